# preload/: libvolmig.so, the shim.  libc only: it links the libc-only part
# of lib/ compiled in (never libdb or libxxhash), and exports only the libc
# names it interposes (libvolmig.map).
SHIM_SRC := $(wildcard preload/*.c)
SHIM_OBJ := $(patsubst %.c,$(B)/%.o,$(SHIM_SRC)) $(patsubst %.c,$(B)/%.o,$(LIB_LIBC_SRC))
SHIM := $(B)/libvolmig.so

$(SHIM): $(SHIM_OBJ) preload/libvolmig.map
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -shared -Wl,--version-script=preload/libvolmig.map \
		-Wl,-z,now -Wl,--no-undefined -o $@ $(SHIM_OBJ) -ldl -lpthread

all: $(SHIM)
