"""Import every diagnostic so each registers itself."""
import deepsight.diagnostics.experts  # noqa: F401
import deepsight.diagnostics.mi_peaks  # noqa: F401
import deepsight.diagnostics.spin  # noqa: F401
import deepsight.diagnostics.tellme  # noqa: F401
import deepsight.diagnostics.xboundary  # noqa: F401
