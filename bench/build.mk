# bench/: benchmarks against dd, qemu-img and fio (bench/README.md).
#   make bench         the full set; results in build/bench/
#   make bench-smoke   a quick run (two minutes or less) for CI; results in
#                      build/bench/smoke/, recorded, never judged
# BENCH_ARGS are passed to bench/run.sh (say BENCH_ARGS='--only copy,shim').
BENCH_PROGS := $(B)/bench/firstwrite $(B)/bench/iowatch $(B)/bench/libnoop.so
BENCH_ARGS ?=

$(B)/bench/%: $(B)/bench/%.o
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< -lpthread

# the do-nothing preload (the floor of the shim's overhead); no sanitizer,
# as for the shim: it runs inside fio
$(B)/bench/libnoop.so: bench/noop.c $(B)/.flags
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(filter-out $(SAN_FLAGS),$(ALL_CFLAGS)) -shared -o $@ $< -ldl

bench: deps all $(BENCH_PROGS)
	$(Q)bench/run.sh --build $(B) --out build/bench $(BENCH_ARGS)

bench-smoke: deps all $(BENCH_PROGS)
	$(Q)bench/run.sh --smoke --build $(B) --out build/bench/smoke $(BENCH_ARGS)
