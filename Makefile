# The two commands of README.md, and a few more for development.
.PHONY: up down status test lint crds bench

up:      ## local cluster with a real node, CRDs, operator, webhooks, panel, examples and a served site (as root)
	bash scripts/up.sh

test:    ## every check and test, exactly what CI runs
	bash scripts/test.sh

down:    ## stop what `make up` started
	bash scripts/down.sh

status:  ## what `make up` runs, and whether the API server and the example site answer
	bash scripts/status.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

crds:    ## regenerate crds/yaml and charts/oem-hosting/crds from the Rust types
	cargo run -q -p oem-crds --bin crdgen

bench:   ## benchmarks (print figures, never fail on time), in a loopback-only network namespace
	bash scripts/bench.sh
