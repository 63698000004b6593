#!/usr/bin/env bash
# Reads in a long-running process follow the session's state.  One process
# under the shim stays attached from setup to commit and reads the same
# range of the source with pread, read, preadv, readv and io_submit
# (IOCB_CMD_PREAD) after each transition.  The source's range is changed
# behind the shim once the copy is done, so the source and the target
# differ there: setup, copying and synced must read the source; switched and
# committed the target; switched back the source again.  The shim decides
# from the state alone while it sends no read to a target (its fast path),
# so a process that saw one state must see the next at its next read.
. "$(dirname "$0")/lib-test.sh"
cd "$SCRATCH" || exit 1
MIB=1048576
off=$((3 * MIB + 4096)) len=65536

cat >reader.py <<'PY'
import ctypes, hashlib, os, struct, sys

path, off, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fd = os.open(path, os.O_RDONLY)
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
L = ctypes.c_long
# io_setup, io_getevents, io_submit; other machines read without io_submit
AIO = {"x86_64": (206, 208, 209), "aarch64": (0, 4, 2)}.get(os.uname().machine)
ctx = ctypes.c_ulong(0)
if AIO:
    SYS_io_setup, SYS_io_getevents, SYS_io_submit = AIO
    if libc.syscall(L(SYS_io_setup), L(8), ctypes.byref(ctx)) != 0:
        sys.exit("io_setup: errno %d" % ctypes.get_errno())

def aio_read():
    buf = ctypes.create_string_buffer(n)
    cb = ctypes.create_string_buffer(struct.pack(
        "<QIIHhIQQqQII", 0, 0, 0, 0, 0, fd, ctypes.addressof(buf), n, off, 0, 0, 0), 64)
    ptrs = (ctypes.c_void_p * 1)(ctypes.addressof(cb))
    if libc.syscall(L(SYS_io_submit), L(ctx.value), L(1), ptrs) != 1:
        sys.exit("io_submit: errno %d" % ctypes.get_errno())
    ev = ctypes.create_string_buffer(32)
    if libc.syscall(L(SYS_io_getevents), L(ctx.value), L(1), L(1), ev, None) != 1:
        sys.exit("io_getevents: errno %d" % ctypes.get_errno())
    if struct.unpack("<QQqq", ev.raw)[2] != n:
        sys.exit("aio read short")
    return buf.raw

def at_current(fn):
    os.lseek(fd, off, os.SEEK_SET)
    return fn()

def forms():
    b = bytearray(n)
    yield "pread", os.pread(fd, n, off)
    yield "read", at_current(lambda: os.read(fd, n))
    yield "preadv", b[:os.preadv(fd, [b], off)]
    b2 = bytearray(n)
    yield "readv", b2[:at_current(lambda: os.readv(fd, [b2]))]
    if AIO:
        yield "io_submit", aio_read()

for line in sys.stdin:
    print(" ".join("%s=%s" % (name, hashlib.sha256(data).hexdigest()) for name, data in forms()),
          flush=True)
PY

case $(uname -m) in
x86_64 | aarch64) forms="pread, read, preadv, readv and io_submit" nforms=5 ;;
*)
	forms="pread, read, preadv and readv" nforms=4
	skip_test "io_submit reads: the test knows no aio system call numbers for $(uname -m)"
	;;
esac

make_random src.img 8
ok_if "setup of an 8 MiB pair" $VOLMIG setup -s st --source src.img --target tgt.img
mkfifo cmd ans
spawn rpid sh -c 'exec "$@" <cmd >ans' reader $VOLMIG exec -s st -- python3 reader.py src.img $off $len
exec 3>cmd 4<ans

range_sha() { dd if="$1" bs=4096 skip=$((off / 4096)) count=$((len / 4096)) status=none | sha256sum | cut -d' ' -f1; }

# reads_from WHAT FILE: every form read by the running process returns the
# range as FILE holds it
reads_from() {
	local what=$1 want line bad= n=0
	want=$(range_sha "$2")
	echo go >&3
	if ! read -r -t 60 line <&4; then
		not_ok "$what: the reader did not answer"
		return
	fi
	for f in $line; do
		[ "${f#*=}" = "$want" ] || bad="$bad ${f%%=*}"
		n=$((n + 1))
	done
	[ $n -eq "$nforms" ] || bad="$bad ($n forms, not $nforms)"
	[ -n "$line" ] && [ -z "$bad" ] && ok "$what: $forms read $2" ||
		not_ok "$what: not read from $2:${bad:- no answer}"
}

differ() { ok_if "$1: the source and the target differ in the range" \
	test "$(range_sha src.img)" != "$(range_sha tgt.img)"; }
differ "setup"
reads_from "setup" src.img

# copying: the copier (1 MiB/s, from region 0) is killed once the state
# says copying, before it reaches the range (region 3)
spawn cpid $VOLMIG sync -s st --rate 1M --threads 1 --progress-interval 0
for _ in $(seq 200); do [ "$(status_field st state)" = copying ] && break; sleep 0.05; done
kill -KILL "$cpid"
wait "$cpid" 2>/dev/null
ok_if "copying" test "$(status_field st state)" = copying
differ "copying"
reads_from "copying" src.img

ok_if "sync" $VOLMIG sync -s st --progress-interval 0
ok_if "synced" test "$(status_field st state)" = synced
# the source's range changed behind the shim: the two now differ there
head -c $len /dev/urandom | dd of=src.img bs=4096 seek=$((off / 4096)) conv=notrunc status=none
differ "synced"
reads_from "synced" src.img
ok_if "switch" $VOLMIG switch -s st
reads_from "switched" tgt.img
ok_if "switch --source" $VOLMIG switch -s st --source
reads_from "switched back" src.img
ok_if "switch again" $VOLMIG switch -s st
ok_if "commit" $VOLMIG commit -s st
reads_from "committed" tgt.img

exec 3>&-
wait "$rpid"
ok_if "the reader ends cleanly" test $? -eq 0
done_testing
