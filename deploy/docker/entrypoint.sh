#!/bin/sh
# Market Spine image entrypoint: the first argument is the process role.
#   api | worker | scheduler | reconciler | migrate | cleanup | reconcile | manage ARGS... | CMD...
# Extra arguments are passed to the role's command, e.g. `worker --lanes backfill`.
set -eu

here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."  # the application root (/app in the image): manage.py lives there

role="${1:-api}"
[ "$#" -gt 0 ] && shift

# prometheus_client's multiprocess mode keeps one file per process: start every container clean.
reset_metrics_dir() {
    if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
        mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
        find "$PROMETHEUS_MULTIPROC_DIR" -mindepth 1 -delete
    fi
}

case "$role" in
    api)
        reset_metrics_dir
        exec gunicorn spine_project.wsgi --config "$here/gunicorn.conf.py" "$@"
        ;;
    worker)
        reset_metrics_dir
        exec python manage.py spine_worker \
            --lanes "${SPINE_WORKER_LANES:-normal}" \
            --processes "${SPINE_WORKER_PROCESSES:-2}" \
            --threads "${SPINE_WORKER_THREADS:-4}" "$@"
        ;;
    scheduler)
        exec python manage.py spine_scheduler "$@"
        ;;
    reconciler)
        exec python manage.py spine_reconcile --loop "$@"
        ;;
    reconcile)
        exec python manage.py spine_reconcile "$@"
        ;;
    cleanup)
        exec python manage.py spine_cleanup "$@"
        ;;
    migrate)
        exec python manage.py migrate --noinput "$@"
        ;;
    manage)
        exec python manage.py "$@"
        ;;
    *)
        exec "$role" "$@"
        ;;
esac
