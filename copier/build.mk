# copier/: the volmig command.
COPIER_SRC := $(wildcard copier/*.c)
COPIER_OBJ := $(patsubst %.c,$(B)/%.o,$(COPIER_SRC))
VOLMIG := $(B)/volmig

$(VOLMIG): $(COPIER_OBJ) $(LIB_A)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $(COPIER_OBJ) $(LIB_A) $(LIB_LIBS)

all: $(VOLMIG)
