#!/bin/bash -eu
# OSS-Fuzz's build step for Amber: the same engine-agnostic script ClusterFuzzLite runs.
exec "$SRC/amber/fuzz/build-engine.sh"
