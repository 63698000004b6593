# lib/: the shared core.  LIB_LIBC_SRC may use libc only (the shim links it);
# LIB_COPIER_SRC adds Berkeley DB and xxhash and is linked by the copier only.
LIB_LIBC_SRC := lib/log.c lib/size.c lib/io.c lib/region.c lib/ctl.c lib/dlog.c lib/crash.c lib/iocb.c
LIB_COPIER_SRC := lib/sess.c lib/state.c
LIB_OBJ := $(patsubst %.c,$(B)/%.o,$(LIB_LIBC_SRC) $(LIB_COPIER_SRC))
LIB_A := $(B)/libvolmig-core.a
LIB_LIBS := -ldb-5.3 -lxxhash -lpthread

$(LIB_A): $(LIB_OBJ)
	$(Q)rm -f $@
	$(Q)ar rcs $@ $^
