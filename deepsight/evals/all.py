"""Import every benchmark so each registers itself."""

from deepsight.evals import (  # noqa: F401
    advbench,
    beavertails,
    donotanswer,
    evaluation_faking,
    gsm8k,
    halueval,
    harmbench,
    jailbreakbench,
    mossbench,
    orbench,
    salad_bench,
    sandbagging,
    siuo,
    sorry_bench,
    strongreject,
    truthfulqa,
    wmdp,
    xstest,
)
