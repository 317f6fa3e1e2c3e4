#!/usr/bin/env bash
# The default runtime of the kind back end's dockerd: runc, with CAP_SYS_RESOURCE taken out of
# every container's capabilities first. kind starts its nodes with --privileged, which asks for
# every capability; where root's own bounding set lacks CAP_SYS_RESOURCE (sandboxed hosts, this
# project's CI among them) runc then fails with "unable to apply caps: operation not permitted".
# The OCI spec is config.json in the bundle (create, run) or the --process file (exec).
set -euo pipefail
spec=""
prev=""
cmd=""
for arg in "$@"; do
  case $prev in
    --bundle | -b) spec=$arg/config.json ;;
    --process | -p) [ "$cmd" = exec ] && spec=$arg ;;
  esac
  case $arg in
    --bundle=*) spec=${arg#--bundle=}/config.json ;;
    --process=*) spec=${arg#--process=} ;;
    create | run | exec) [ -z "$cmd" ] && cmd=$arg ;;
  esac
  prev=$arg
done
# create/run without --bundle take the bundle from the working folder.
if [ -z "$spec" ] && { [ "$cmd" = create ] || [ "$cmd" = run ]; }; then spec=$PWD/config.json; fi
if [ -n "$spec" ] && [ -f "$spec" ] && grep -q CAP_SYS_RESOURCE "$spec"; then
  filter='map_values(if type == "array" then map(select(. != "CAP_SYS_RESOURCE")) else . end)'
  if [ "$cmd" = exec ]; then
    jq -c ".capabilities |= (if . then $filter else . end)" "$spec" >"$spec.tp" && mv "$spec.tp" "$spec"
  else
    jq -c ".process.capabilities |= (if . then $filter else . end)" "$spec" >"$spec.tp" && mv "$spec.tp" "$spec"
  fi
fi
exec "${TP_KIND_RUNC:-runc}" "$@"
