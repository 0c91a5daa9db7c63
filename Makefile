# Two entry points, each doing its own set-up on a fresh machine (see scripts/setup.sh).
.PHONY: demo test unit setup clean

demo:
	@scripts/setup.sh stream,test
	.venv/bin/usage-pipeline demo

test:
	@scripts/setup.sh stream,test
	.venv/bin/python -m pytest -p no:cacheprovider

unit:
	@scripts/setup.sh stream,test
	.venv/bin/python -m pytest -p no:cacheprovider tests/unit

setup:
	@scripts/setup.sh stream,test

clean:
	rm -rf .venv .usage-pipeline
