.PHONY: run test bench lint

run:  ## set up, then run the SBC on the demo policies
	ops/setup.sh
	.venv/bin/sbc run --policies policies

test:  ## set up, then run lint, type checks and the whole test suite
	ops/test.sh

bench:  ## the benchmarks in bench/, one line of figures each (bench/media.py apart: it installs rtpengine)
	ops/setup.sh --dev
	.venv/bin/python bench/parser.py
	.venv/bin/python bench/core.py
	.venv/bin/python bench/signalling.py
	.venv/bin/python bench/memory.py
	.venv/bin/python bench/policy.py
	.venv/bin/python bench/guard.py
	.venv/bin/python bench/manipulations.py
	.venv/bin/python bench/cdr.py
	.venv/bin/python bench/registrations.py
	.venv/bin/python bench/auth.py
	.venv/bin/python bench/srtp.py
	.venv/bin/python bench/dtls.py
	.venv/bin/python bench/dtmf.py
	.venv/bin/python bench/transcode.py
	.venv/bin/python bench/transcode_relay.py
	.venv/bin/python bench/leak_guard.py
	.venv/bin/python bench/core.py --compare-leak-guard
	.venv/bin/python bench/kernel_filter.py
	.venv/bin/python bench/hostile.py
