"""Import every benchmark so each registers itself."""

from deepsight.evals import (  # noqa: F401
    advbench,
    beavertails,
    deception_bench,
    donotanswer,
    evaluation_faking,
    fake_alignment,
    flames,
    gsm8k,
    halueval,
    harmbench,
    jailbreakbench,
    mask,
    orbench,
    salad_bench,
    sandbagging,
    sorry_bench,
    strongreject,
    truthfulqa,
    wmdp,
    xstest,
)
