#!/usr/bin/env python3
"""Check the write ordering of volmig in a system-call trace.

    trace-check.py i2 TRACE STATE_DIR SOURCE REGION_SIZE
    trace-check.py i3 TRACE TARGET STATE_DIR

The trace is `strace -f -ttt -T -y -s 0` output (see harness/t/t0500-*.sh).

i2 (intent before data): the trace is of an application under the shim.
Every dirty-log record a thread appends (a 32-byte pwrite64 to a segment in
STATE_DIR/log, decoded from the segment file) must be durable before that
thread's next write to SOURCE is issued -- an fdatasync of that segment, by
any thread, that started after the append returned and ended before the
write started -- and must name a region that write touches.

i3 (flush before clean): the trace is of `volmig sync`.  Every write to
TARGET that ended before a checkpoint commit (an fdatasync of the Berkeley
DB log by the main thread) may be recorded clean by the next commit, so it
must be covered by an fdatasync of TARGET that started after the write
ended and ended before that next commit started.

Prints what it checked; exit 0 when the order holds, 1 with the first
violations otherwise, 2 on bad input.
"""
import os
import re
import struct
import sys

LINE = re.compile(r'^(\d+)\s+(\d+\.\d+)\s+(.*)$')
CALL = re.compile(r'^(\w+)\((.*)$')
RESUMED = re.compile(r'^<\.\.\. (\w+) resumed>(.*)$')
RESULT = re.compile(r'\)\s+=\s+(-?\d+|\?)(?:\s+\w+\s+\([^)]*\))?\s+<(\d+\.\d+)>\s*$')
FDPATH = re.compile(r'^(\d+)<([^>]*)>')


class Call:
    __slots__ = ('tid', 'name', 'args', 'start', 'end', 'ret')

    def __init__(self, tid, name, args, start):
        self.tid, self.name, self.args, self.start = tid, name, args, start
        self.end, self.ret = None, None

    def path(self):
        m = FDPATH.match(self.args)
        return m.group(2) if m else None

    def ints(self):
        """Trailing integer arguments (count, offset, flags)."""
        body = self.args
        cut = body.rfind(')')
        if cut >= 0:
            body = body[:cut]
        return [int(x) for x in re.findall(r'(?:^|,\s*)(-?\d+)(?=\s*(?:,|$))', body)]


def parse(path):
    calls, pending = [], {}
    with open(path, errors='replace') as f:
        for raw in f:
            m = LINE.match(raw.rstrip('\n'))
            if not m:
                continue
            tid, ts, rest = int(m.group(1)), float(m.group(2)), m.group(3)
            r = RESUMED.match(rest)
            if r:
                c = pending.pop(tid, None)
                if c is None:
                    continue
                c.args += r.group(2)
                tail = RESULT.search(rest)
            else:
                cm = CALL.match(rest)
                if not cm:
                    continue
                c = Call(tid, cm.group(1), cm.group(2), ts)
                calls.append(c)
                if rest.endswith('<unfinished ...>'):
                    c.args = c.args[:-len('<unfinished ...>')]
                    pending[tid] = c
                    continue
                tail = RESULT.search(rest)
            if tail:
                c.ret = None if tail.group(1) == '?' else int(tail.group(1))
                c.end = c.start + float(tail.group(2))
    return [c for c in calls if c.end is not None]


def write_span(c):
    """(offset, length) of a positional write, or None."""
    n = c.ints()
    if c.name == 'pwrite64' and len(n) >= 2:
        return n[-1], n[-2]
    if c.name in ('pwritev', 'pwritev2'):
        lens = [int(x) for x in re.findall(r'iov_len=(\d+)', c.args)]
        off = n[-2] if c.name == 'pwritev2' else n[-1]
        return off, sum(lens)
    return None


def iocb_spans(c, source):
    """(offset, length) of each write iocb to source in an io_submit."""
    spans = []
    for cb in re.finditer(r'\{aio_data=.*?aio_offset=(\d+)\}', c.args):
        body = cb.group(0)
        op = re.search(r'aio_lio_opcode=(IOCB_CMD_\w+)', body)
        fd = re.search(r'aio_fildes=\d+<([^>]*)>', body)
        if not op or not fd or op.group(1) not in ('IOCB_CMD_PWRITE', 'IOCB_CMD_PWRITEV'):
            continue
        if os.path.realpath(fd.group(1)) != source:
            continue
        if op.group(1) == 'IOCB_CMD_PWRITE':
            n = int(re.search(r'aio_nbytes=(\d+)', body).group(1))
        else:
            n = sum(int(x) for x in re.findall(r'iov_len=(\d+)', body))
        spans.append((int(cb.group(1)), n))
    return spans


def check_i2(trace, state, source, region):
    shift = region.bit_length() - 1
    calls = parse(trace)
    logdir = os.path.realpath(os.path.join(state, 'log')) + '/'
    source = os.path.realpath(source)
    segs = {}

    def record(path, off):
        if path not in segs:
            try:
                with open(path, 'rb') as f:
                    segs[path] = f.read()
            except OSError:
                segs[path] = b''
        b = segs[path][off:off + 32]
        if len(b) < 32:
            return None
        _seq, pair, count, first = struct.unpack('<QIIQ', b[:24])
        return pair, first, count

    # per segment: its fdatasyncs (start, end), by any thread
    syncs = {}
    for c in calls:
        p = c.path()
        if c.name == 'fdatasync' and p and p.startswith(logdir) and c.ret == 0:
            syncs.setdefault(p, []).append((c.start, c.end))
    pending = {}  # tid -> [(append end, region range)]
    bad, appends, writes = [], 0, 0
    for c in calls:
        p = c.path()
        if p is None and c.name != 'io_submit':
            continue
        if c.name == 'pwrite64' and p.startswith(logdir) and c.ret == 32:
            rec = record(p, c.ints()[-1])
            if rec is None:
                bad.append(f'{c.start:.6f} tid {c.tid}: appended record not in {p}')
                continue
            appends += 1
            pending.setdefault(c.tid, []).append((c.end, rec[1], rec[1] + rec[2] - 1, p))
        else:
            if c.name == 'io_submit':
                spans = iocb_spans(c, source)
            elif os.path.realpath(p) == source and c.name in ('pwrite64', 'pwritev', 'pwritev2'):
                spans = [write_span(c)] if write_span(c) else []
            else:
                spans = []
            if not spans:
                continue
            writes += len(spans)
            rr = [(o >> shift, (o + max(n, 1) - 1) >> shift) for o, n in spans]
            what = ', '.join(f'{lo}..{hi}' for lo, hi in rr)
            for (aend, first, last, seg) in pending.pop(c.tid, []):
                if all(last < lo or first > hi for lo, hi in rr):
                    bad.append(f'{c.start:.6f} tid {c.tid}: record for regions {first}..{last} '
                               f'does not cover the write to regions {what} that follows it')
                if not any(s >= aend and e <= c.start for s, e in syncs.get(seg, [])):
                    bad.append(f'{c.start:.6f} tid {c.tid}: write to regions {what} issued '
                               f'before its intent (appended {aend:.6f}) was flushed')
    print(f'i2: {appends} intent records, {writes} source writes checked')
    return bad, appends


def check_i3(trace, target, state):
    calls = parse(trace)
    target = os.path.realpath(target)
    state = os.path.realpath(state) + '/'
    main = calls[0].tid if calls else 0
    twrites = [c for c in calls if c.name in ('pwrite64', 'pwritev', 'fallocate')
               and c.path() and os.path.realpath(c.path()) == target]
    tsyncs = [c for c in calls if c.name in ('fdatasync', 'fsync') and c.path()
              and os.path.realpath(c.path()) == target and c.ret == 0]
    commits = [c for c in calls if c.tid == main and c.name in ('fdatasync', 'fsync') and c.path()
               and c.path().startswith(state + 'log.')]
    bad = []
    prev_end = None
    for cm in commits:
        if prev_end is not None:
            for w in twrites:
                if w.end >= prev_end:
                    continue
                if not any(s.start >= w.end and s.end <= cm.start for s in tsyncs):
                    bad.append(f'commit at {cm.start:.6f}: target write ended {w.end:.6f} '
                               f'not flushed before it')
                    break
        prev_end = cm.end
    print(f'i3: {len(commits)} commits, {len(twrites)} target writes, {len(tsyncs)} target flushes')
    return bad, len(commits)


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ('i2', 'i3'):
        print(__doc__, file=sys.stderr)
        return 2
    if sys.argv[1] == 'i2' and len(sys.argv) == 6:
        bad, n = check_i2(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif sys.argv[1] == 'i3' and len(sys.argv) == 5:
        bad, n = check_i3(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    if n == 0:
        print('nothing to check in the trace', file=sys.stderr)
        return 2
    for b in bad[:20]:
        print('violation:', b)
    if bad:
        print(f'{len(bad)} violations')
        return 1
    print('order holds')
    return 0


if __name__ == '__main__':
    sys.exit(main())
