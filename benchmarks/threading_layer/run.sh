#!/bin/bash
# numba on the named configs: the default (workqueue) layer vs GNU OpenMP, alternated 2 times
cd "$(dirname "$0")/../.."  # the repository root; gconv-edu on PATH (the README install)
for i in 1 2; do
  for layer in workqueue omp; do
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE NUMBA_THREADING_LAYER=$layer gconv-edu bench --backends numba --no-peer --no-peak --repeats 7 --passes forward+backward --no-plot --json /tmp/layer_${layer}_$i.json > /tmp/layer_${layer}_$i.txt 2>/dev/null
  done
done
python3 - <<'P'
import json
def load(f): return {r['config']: r['ms_median'] for r in json.load(open(f))['records'] if r['contender']=='numba'}
for i in (1,2):
    w=load(f'/tmp/layer_workqueue_{i}.json'); o=load(f'/tmp/layer_omp_{i}.json')
    print(i, "  ".join(f"{c}: wq {w[c]:.1f} omp {o[c]:.1f} ratio {w[c]/o[c]:.2f}" for c in w))
P
