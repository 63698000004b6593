#!/usr/bin/env python3
"""resizer: a program that changes a file's length while it writes it.

Run under the shim (volmig exec) against a file source.  It keeps a model of
what the file must hold and, in a loop until SIGTERM or the op budget runs
out, does one of:
  - pwrite a random block, sometimes past the end (the file grows, with a
    hole between the old end and the block);
  - ftruncate to a random length (shorter or longer);
  - truncate(2) by path (the same through the path);
  - posix_fallocate a range, sometimes past the end (the file grows);
  - append at the end found with lseek(SEEK_END) and write(2);
  - read back a random range, sometimes across the end, and compare it with
    the model (so a read sent to a target of the wrong length or content is
    caught).
Lengths stay within [MIN, MAX).  At start the model is the file as read
through the shim; at exit (SIGTERM or budget) the whole file is read back and
compared, and the model is written to --model.  Exit status 0 when every read
matched, 1 at the first mismatch (printed), 2 on usage errors.

    resizer.py FILE MIN MAX SEED [--ops N] [--model PATH] [--over N] [--ready PATH]

--over N: the last op grows the file N bytes past MAX (a write past the end
the session has room for) and must succeed.
--ready PATH: created once SIGTERM is handled, so that a caller that waits
for it knows a SIGTERM from then on ends the run with the final check.
"""
import os
import random
import signal
import sys

stop = False


def on_term(_sig, _frame):
    global stop
    stop = True


def read_all(fd, n):
    out = bytearray()
    while len(out) < n:
        b = os.pread(fd, n - len(out), len(out))
        if not b:
            break
        out += b
    return out


def check(fd, model, off, n):
    got = os.pread(fd, n, off)
    want = bytes(model[off:off + n])
    if got != want:
        k = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]),
                 min(len(got), len(want)))
        print(f"resizer: read of {n} at {off}: got {len(got)} bytes, want {len(want)}; "
              f"first difference at {off + k} (file length {len(model)})", file=sys.stderr)
        return False
    return True


def main():
    args = sys.argv[1:]
    opts = {"--ops": "0", "--model": "", "--over": "0", "--ready": ""}
    pos = []
    while args:
        a = args.pop(0)
        if a in opts:
            opts[a] = args.pop(0)
        else:
            pos.append(a)
    if len(pos) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    path, lo, hi, seed = pos[0], int(pos[1]), int(pos[2]), int(pos[3])
    ops, over = int(opts["--ops"]), int(opts["--over"])
    rng = random.Random(seed)
    signal.signal(signal.SIGTERM, on_term)
    if opts["--ready"]:
        open(opts["--ready"], "w").close()
    fd = os.open(path, os.O_RDWR)
    model = read_all(fd, os.fstat(fd).st_size)
    done = 0
    ok = True
    while ok and not stop and (ops == 0 or done < ops):
        op = rng.random()
        if op < 0.5:
            n = rng.randrange(1, 96 * 1024)
            if rng.random() < 0.3:  # past the end
                off = len(model) + rng.randrange(0, 256 * 1024)
            else:
                off = rng.randrange(0, max(1, len(model)))
            off = min(off, hi - n - 1)
            data = rng.randbytes(n)
            if os.pwrite(fd, data, off) != n:
                print("resizer: short write", file=sys.stderr)
                return 1
            if off > len(model):
                model += bytes(off - len(model))
            model[off:off + n] = data
        elif op < 0.62:
            new = rng.randrange(lo, hi)
            os.ftruncate(fd, new)
            model = model[:new] + bytes(max(0, new - len(model)))
        elif op < 0.67:
            new = rng.randrange(lo, hi)
            os.truncate(path, new)
            model = model[:new] + bytes(max(0, new - len(model)))
        elif op < 0.71:
            off = rng.randrange(0, hi - 1)
            n = rng.randrange(1, min(256 * 1024, hi - off))
            os.posix_fallocate(fd, off, n)
            if off + n > len(model):
                model += bytes(off + n - len(model))
        elif op < 0.75 and len(model) < hi - 64 * 1024:
            data = rng.randbytes(rng.randrange(1, 64 * 1024))
            end = os.lseek(fd, 0, os.SEEK_END)
            if end != len(model):
                print(f"resizer: lseek to the end gave {end}, want {len(model)}",
                      file=sys.stderr)
                ok = False
                break
            if os.write(fd, data) != len(data):
                print("resizer: short append", file=sys.stderr)
                return 1
            model += data
        else:
            off = rng.randrange(0, len(model) + 1)
            n = rng.randrange(1, 192 * 1024)
            ok = check(fd, model, off, n)
        done += 1
    if ok and over > 0:
        data = rng.randbytes(4096)
        off = hi + over - len(data)
        if os.pwrite(fd, data, off) != len(data):
            print("resizer: short write past the reserve", file=sys.stderr)
            return 1
        model += bytes(off - len(model))
        model[off:off + len(data)] = data
    if ok:
        if os.fstat(fd).st_size != len(model):
            print(f"resizer: length {os.fstat(fd).st_size}, want {len(model)}",
                  file=sys.stderr)
            ok = False
        else:
            ok = read_all(fd, len(model) + 1) == model
            if not ok:
                print("resizer: the file read back differs from the model", file=sys.stderr)
    if opts["--model"]:
        with open(opts["--model"], "wb") as f:
            f.write(model)
    print(f"resizer: {done} ops, length {len(model)}, {'ok' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
