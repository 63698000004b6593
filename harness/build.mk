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

# u-ingest tests the copier's dirty-log reader, which is not in lib/.
$(B)/unit/u-ingest: $(B)/harness/unit/u-ingest.o $(B)/copier/ingest.o $(LIB_A)
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIB_LIBS)

# The workload writer drives libaio itself (io_submit/io_getevents).
$(B)/harness/writer: $(B)/harness/writer.o $(LIB_A)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIB_A) $(LIB_LIBS) -laio

# The fault-injection preload (harness/faultio.c): a shared library, libc
# and libdl only, not a program.
FAULTIO := $(B)/libfaultio.so
HARNESS_PROGS := $(filter-out $(B)/harness/faultio,$(HARNESS_PROGS))
CHECK_BINS := $(filter-out $(B)/harness/faultio,$(CHECK_BINS)) $(FAULTIO)

# Like the shim, never sanitized: it is preloaded into programs that are not.
$(FAULTIO): $(B)/shim/harness/faultio.o
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(filter-out $(SAN_FLAGS),$(ALL_LDFLAGS)) -shared -Wl,-z,now -Wl,--no-undefined \
		-o $@ $< -ldl
