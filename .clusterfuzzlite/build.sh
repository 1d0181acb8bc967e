#!/bin/bash -eu
# ClusterFuzzLite's build step: the engine-agnostic script in the repository does the work.
exec "$SRC/amber/fuzz/build-engine.sh"
