"""Why a serving check failed: one `ServingCheckError` subclass per stage a caller handles apart.

Example:
>>> from keras_siamese.export import ServingCheckBuildError, ServingCheckError
>>> issubclass(ServingCheckBuildError, ServingCheckError)
True
"""


class ServingCheckError(RuntimeError):
    """The SavedModel failed the serving check, or the checker could not be built.

    Catch a subclass to act on one stage: `ServingCheckBuildError` (no C++
    compiler, or the checker did not compile), `ServingCheckLoadError` (the
    version did not load), `ServingCheckWarmupError` (a warmup record did not
    run), `ServingCheckRunError` (the signature did not run the texts),
    `ServingCheckConcurrencyError` (answers under concurrent requests differed
    or failed), `ServingCheckTimeoutError` (`timeout` ran out). `stage` names
    the step that failed (`"build"`, `"load"`, `"warmup"`, `"run"`, ...) and
    `log` holds what the compiler or the C++ loader printed.

    Example:
    >>> try:  # doctest: +SKIP
    ...     report = check_serving("serving/wordnet/1")
    ... except ServingCheckBuildError:
    ...     report = None  # no C++ compiler here: the check is skipped
    """

    default_stage = None

    def __init__(self, message, stage=None, log=""):
        self.stage = stage or self.default_stage
        self.log = log
        super().__init__(message)


class ServingCheckBuildError(ServingCheckError):
    """No C++17 compiler was found, or compiling the checker failed (`log`: the compiler's output)."""

    default_stage = "build"


class ServingCheckLoadError(ServingCheckError):
    """TF Text's op libraries or `tensorflow::LoadSavedModel` failed on the version directory."""

    default_stage = "load"


class ServingCheckWarmupError(ServingCheckError):
    """A record of `assets.extra/tf_serving_warmup_requests` is damaged or did not run;
    TF Serving would not serve the version."""

    default_stage = "warmup"


class ServingCheckRunError(ServingCheckError):
    """The signature is missing, does not take one string tensor, or failed on the texts."""

    default_stage = "run"


class ServingCheckConcurrencyError(ServingCheckError):
    """Under concurrent requests (`ServingLoad`) a request failed, or its answer was not finite
    or differed from the same request sent alone."""

    default_stage = "concurrency"


class ServingCheckTimeoutError(ServingCheckError):
    """The check did not finish within `timeout` seconds."""

    default_stage = "timeout"


# The C++ checker's stages (serving_check.cc) and the error each one raises.
ERRORS_BY_STAGE = {
    "op_libraries": ServingCheckLoadError,
    "load": ServingCheckLoadError,
    "warmup": ServingCheckWarmupError,
    "signature": ServingCheckRunError,
    "input": ServingCheckRunError,
    "run": ServingCheckRunError,
    "trace": ServingCheckRunError,
    "concurrency": ServingCheckConcurrencyError,
}
