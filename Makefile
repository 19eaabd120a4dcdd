.PHONY: install lint test bench check

install: ; python3 -m pip install -e ".[dev]"
lint:  ; ruff check . && ruff format --check . && mypy src && lint-imports
test:  ; python3 -m pytest
bench: ; for f in benchmarks/bench_*.py; do python3 "$$f" || exit 1; done
check: lint test
