# harness/: unit tests (one binary per lib/ module) and helper programs.
UNIT_SRC := $(wildcard harness/unit/u-*.c)
UNIT_BINS := $(patsubst harness/unit/%.c,$(B)/unit/%,$(UNIT_SRC))
HARNESS_PROGS := $(patsubst harness/%.c,$(B)/harness/%,$(wildcard harness/*.c))

$(B)/unit/%: $(B)/harness/unit/%.o $(LIB_A)
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIB_A) $(LIB_LIBS)

$(B)/harness/%: $(B)/harness/%.o $(LIB_A)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIB_A) $(LIB_LIBS)

CHECK_BINS := $(UNIT_BINS) $(HARNESS_PROGS)

# The workload writer drives libaio itself (io_submit/io_getevents).
$(B)/harness/writer: $(B)/harness/writer.o $(LIB_A)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIB_A) $(LIB_LIBS) -laio
