# preload/: libvolmig.so, the shim.  libc only: it links the libc-only part
# of lib/ compiled in (never libdb or libxxhash), and exports only the libc
# names it interposes (libvolmig.map).
#
# The shim is never built with a sanitizer: it runs inside programs that are
# not (fio, python, dd), where a sanitizer runtime cannot come first.  It is
# checked under valgrind instead (make check-valgrind).  Its objects live in
# $(B)/shim/ so they do not mix with the sanitized ones.
SHIM_SRC := $(wildcard preload/*.c)
SHIM_OBJ := $(patsubst %.c,$(B)/shim/%.o,$(SHIM_SRC) $(LIB_LIBC_SRC))
SHIM := $(B)/libvolmig.so
SHIM_CFLAGS := $(filter-out $(SAN_FLAGS),$(ALL_CFLAGS))

$(B)/shim/%.o: %.c $(B)/.flags
	@mkdir -p $(@D)
	$(if $(Q),@echo "  CC      $@")
	$(Q)$(CC) $(SHIM_CFLAGS) -MMD -MP -c -o $@ $<

$(SHIM): $(SHIM_OBJ) preload/libvolmig.map
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(filter-out $(SAN_FLAGS),$(ALL_LDFLAGS)) -shared \
		-Wl,--version-script=preload/libvolmig.map \
		-Wl,-z,now -Wl,--no-undefined -o $@ $(SHIM_OBJ) -ldl -lpthread

all: $(SHIM)
