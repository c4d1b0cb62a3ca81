#!/bin/sh
# The command of the NodeOp recipe in docs/fleets.md (kairos-operator): upgrades the node's extensions on
# the host itself and maps extctl's exit codes to what a rollout needs. 0 (upgraded) and 3
# (nothing to do) complete the node; 75 (EX_TEMPFAIL: a catalog or registry could not be reached)
# is "try later", not a failure, so an outage of the catalog host does not stop the rollout
# (stopOnFailure) fleet-wide; 1 (an upgrade failed and the old version was kept) and anything else
# fail the Job and stop the rollout.
#
# Environment: HOST_ROOT (the node's root in the Pod, default /host), EXTCTL (default
# /usr/bin/extctl), KINDS (default "sysext confext"), EXTCTL_ARGS (more upgrade options, e.g.
# "--tries 2"; split on whitespace), HEALTH_CHECK (passed whole as --health-check: the program and
# its arguments extctl runs after the merge, without a shell; a failing check puts the old
# version back and exits 1), TRIES (passed as --tries), and NODEOP_RUN, the command that runs
# extctl on the host (default: chroot into HOST_ROOT and systemd-run there, so --now merges where
# the node's services see it).
set -u
host_root=${HOST_ROOT:-/host}
extctl=${EXTCTL:-/usr/bin/extctl}
kinds=${KINDS:-sysext confext}
status=0
# The health check is one argument whatever spaces it holds: set it as the positional list.
set --
if [ -n "${HEALTH_CHECK:-}" ]; then set -- "$@" --health-check "$HEALTH_CHECK"; fi
if [ -n "${TRIES:-}" ]; then set -- "$@" --tries "$TRIES"; fi
for kind in $kinds; do
  if [ -n "${NODEOP_RUN:-}" ]; then
    # shellcheck disable=SC2086 # NODEOP_RUN and EXTCTL_ARGS are word lists the operator wrote
    $NODEOP_RUN "$extctl" "$kind" upgrade --all --now --json "$@" ${EXTCTL_ARGS:-}
  else
    # shellcheck disable=SC2086
    chroot "$host_root" systemd-run --wait --pipe --collect --quiet \
      --unit="extctl-upgrade-nodeop-$kind-$(date +%s)" \
      "$extctl" "$kind" upgrade --all --now --json "$@" ${EXTCTL_ARGS:-}
  fi
  rc=$?
  case $rc in
    0) echo "extctl-nodeop: $kind: upgraded" >&2 ;;
    3) echo "extctl-nodeop: $kind: nothing to do" >&2 ;;
    75) echo "extctl-nodeop: $kind: a catalog or registry could not be reached; the next run tries again" >&2 ;;
    *)
      echo "extctl-nodeop: $kind: upgrade failed (exit $rc; a refused version or a failed health check); the old version was kept" >&2
      status=1
      ;;
  esac
done
exit "$status"
