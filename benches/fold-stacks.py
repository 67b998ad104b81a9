#!/usr/bin/env python3
"""Folds `perf script -F comm,tid,ip,sym` output (stdin) into one line per stack, root first,
frames joined by ';' and the sample count last, as flame graph tools read them; writes them to
argv[1] and prints the share of samples by crate of the innermost frame of ours or a dependency
(the std library and libc frames above it are counted to the crate that called them)."""
import collections
import re
import sys

# "tokio::runtime::..." or "<hyper::proto::h2::... as ...>::poll": the crate of a Rust frame.
CRATE = re.compile(r"^<?(?:&(?:mut )?)?(?:dyn )?([a-z_][a-z0-9_]*)::")
# v0 names as c++filt prints them carry each crate's hash: "tokio[3c1c0]::main".
CRATE_HASH = re.compile(r"\[[0-9a-f]+\]")
NOT_A_CALLER = {"core", "alloc", "std", "__rustc"}


def crate_of(stack):
    """The crate of the innermost frame that is neither the standard library nor libc."""
    for frame in reversed(stack):
        m = CRATE.match(frame)
        if m and m.group(1) not in NOT_A_CALLER:
            return m.group(1)
    return "[std, libc, kernel]"


def main():
    folded = collections.Counter()
    by_crate = collections.Counter()
    stack = []

    def close():
        if stack:
            path = list(reversed(stack))
            folded[";".join(path)] += 1
            by_crate[crate_of(path)] += 1
            stack.clear()

    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line.strip():
            close()
        elif line[0] in " \t":
            # "\t    55d1c0a3b1e2 symbol+0x12 (/path)" or "... [unknown]"
            parts = line.strip().split(None, 1)
            symbol = parts[1] if len(parts) > 1 else "[unknown]"
            symbol = re.sub(r"\+0x[0-9a-f]+$", "", symbol.rsplit(" (", 1)[0])
            symbol = CRATE_HASH.sub("", symbol).replace(";", ",")
            stack.append(symbol)
        # else: the sample's header line (comm, tid)
    close()
    with open(sys.argv[1], "w") as out:
        for path, n in sorted(folded.items()):
            out.write(f"{path} {n}\n")
    total = sum(by_crate.values()) or 1
    print(f"{total} samples, by the crate of the innermost frame of ours or a dependency:")
    for crate, n in by_crate.most_common(15):
        print(f"  {100 * n / total:5.1f}%  {crate}")
    print(f"wrote {sys.argv[1]}")


if __name__ == "__main__":
    main()
