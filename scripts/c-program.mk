# The rule every C program of ours is built by (shim/, agent/backends/linux/watcher/, bench/):
# the including Makefile sets SRC (its sources), BIN (the program's path), OUT (BIN's directory),
# CFLAGS, and DEPS (what else it is rebuilt for: its own Makefile at least).

CC = gcc

.PHONY: all clean

all: $(BIN)

# Built under a temporary name and renamed, so a running copy is never overwritten in place
# (ETXTBSY) and an interrupted build never leaves a half-written binary behind.
$(BIN): $(SRC) $(DEPS) $(lastword $(MAKEFILE_LIST)) | $(OUT)
	$(CC) $(CFLAGS) -o $@.tmp $(SRC)
	mv -f $@.tmp $@

$(OUT):
	mkdir -p $@

clean:
	rm -f $(BIN) $(BIN).tmp
