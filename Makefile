# Two commands for a new Debian 12 machine (as root), both idempotent:
#   make run   - install what is missing, then redis-server with the module on 127.0.0.1:6379
#                (SERVER=valkey: the pinned valkey-server instead)
#   make test  - install what is missing, then the whole test suite on Redis 7.0 and
#                VALKEY_TESTS on Valkey
PYTHON ?= /usr/bin/python3.11
VENV := .venv
VPY := $(VENV)/bin/python
PORT ?= 6379
DEPS_STAMP := $(VENV)/.deps-installed
SHIM := $(VENV)/lib/python3.11/site-packages/redisai_py/redisai_shim.so
PYTEST_ARGS ?=
SERVER ?= redis
# What `make test` runs again on Valkey: the stories of data, models, scripts,
# DAGs, persistence, replicas and ACLs, the inference cache, the session budget,
# functions, and one cluster story (failover).
VALKEY_TESTS ?= tests/test_tensors.py tests/test_models.py tests/test_scripts.py tests/test_dag.py \
	tests/test_persistence.py tests/test_model_persistence.py tests/test_replication.py \
	tests/test_keys_and_acl.py tests/test_inference_in_transactions.py tests/test_inference_cache.py tests/test_functions.py \
	tests/test_model_sessions.py tests/test_function_runners.py tests/test_function_triggers.py tests/test_qa_story.py \
	tests/test_cluster.py::test_killed_primary_fails_over_and_the_replica_serves_the_same_data

.PHONY: run test install system build bench fuzz clean

run: install
	$(VPY) -m redisai_py serve --server $(SERVER) --port $(PORT) --dir .data

test: install
	$(VPY) -m pytest $(PYTEST_ARGS)
	$(VPY) -m pytest --server valkey $(VALKEY_TESTS)

# Every benchmark, peers included (wrk drives the REST peer); results in benchmarks/results/.
bench: install
	@command -v wrk >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y wrk)
	$(VPY) benchmarks/run_all.py

# The long fuzz run: 1,000,000 fuzzed commands against one server, 6-10 minutes on
# 2 cores; results in benchmarks/results/fuzz.{json,md}. FUZZ_ARGS="--commands N --seed S".
FUZZ_ARGS ?=
fuzz: install
	$(VPY) benchmarks/fuzz.py $(FUZZ_ARGS)

CLIENT_VENV := .venv-client

install: system $(DEPS_STAMP) build $(CLIENT_VENV)/.installed

# The official RedisAI client pins redis<5, so the tests run it from a venv of its own.
$(CLIENT_VENV)/.installed:
	[ -x $(CLIENT_VENV)/bin/python ] || $(PYTHON) -m venv $(CLIENT_VENV)
	$(CLIENT_VENV)/bin/python -m pip install --quiet "redisai==1.3.0" "redis<5" numpy
	touch $@

# Debian packages: redis-server (7.0), Python 3.11 with venv and headers,
# libxxhash-dev (the inference cache's hash), and
# prometheus (the server tests/test_metrics.py has scrape /metrics; its
# service is not started).
system:
	@command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null \
	  && [ -x $(PYTHON) ] && [ -f /usr/include/python3.11/Python.h ] \
	  && $(PYTHON) -c 'import ensurepip' 2>/dev/null && command -v prometheus >/dev/null \
	  && [ -f /usr/include/xxhash.h ] \
	  || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
	      redis-server redis-tools python3.11 python3.11-venv python3.11-dev cmake ninja-build gcc git \
	      libxxhash-dev \
	      && (DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus \
	          || echo "prometheus could not install: its test will skip"))

# The venv and every dependency; redone when pyproject.toml changes.
$(DEPS_STAMP): pyproject.toml
	[ -x $(VPY) ] || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet "scikit-build-core>=0.10" torch==2.13.0
	$(VPY) -m pip install --quiet $$($(VPY) -c 'import tomllib; d=tomllib.load(open("pyproject.toml","rb"))["project"]; print(" ".join(d["dependencies"] + [x for k in ("backends","test","bench","valkey") for x in d["optional-dependencies"][k]]))')
	touch $@

# The shim and the package, built into the venv (incremental CMake build under build/).
build: $(DEPS_STAMP)
	$(VPY) -m pip install --quiet --no-build-isolation --no-deps .

clean:
	rm -rf build $(VENV) $(CLIENT_VENV) .data
