# model/: the Promela model of the shim/copier protocol, checked with spin
# (model/README.md).  check-model fails when any check fails: the correct
# model must pass every exhaustive run, every broken variant must fail.
# harness/t/t0900-model.sh runs the same checks as part of make check.
.PHONY: check-model

check-model: deps
	$(Q)model/check.sh
