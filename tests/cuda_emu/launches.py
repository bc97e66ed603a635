"""Rewrites CUDA kernel launches for the CUDA emulator (see include/msemu.h):

    Kernel<T, U><<<grid, block, smem, stream>>>(a, b)
 -> ::msemu::Launch(::msemu::Config(grid, block, smem, stream), "Kernel<T, U>",
                    [](auto... msemu_a) { Kernel<T, U>(msemu_a...); }, a, b)

The kernel is called through a generic lambda so that its template arguments are deduced
from the arguments exactly as in the original launch. Line breaks are kept, so compiler
messages keep the original line numbers (a #line directive names the original file).

    python launches.py SRC.cu OUT.cc
"""

import re
import sys

_IDENT = re.compile(r"[A-Za-z0-9_:]")


def _kernel_start(text, end):
    """Start of the kernel expression that ends just before text[end] (`<<<`), blanks and line
    breaks between them allowed (as a formatter may leave `Kernel<A, B>` and `<<<...>>>` on two
    lines)."""
    while end > 0 and text[end - 1] in " \t\r\n":
        end -= 1
    i = end
    if text[i - 1] == ">":  # template arguments: match the brackets backwards
        depth = 0
        while True:
            i -= 1
            c = text[i]
            if c == ">":
                depth += 1
            elif c == "<":
                depth -= 1
                if depth == 0:
                    break
            if i == 0:
                raise ValueError("unbalanced template arguments before <<<")
    while i > 0 and _IDENT.match(text[i - 1]):
        i -= 1
    if i == end:
        raise ValueError("no kernel name before <<<")
    return i


def rewrite(text, name="<source>"):
    out, pos = [], 0
    while True:
        at = text.find("<<<", pos)
        if at < 0:
            break
        close = text.find(">>>", at)
        paren = close + 3
        while paren < len(text) and text[paren] in " \t\r\n":
            paren += 1
        if close < 0 or paren >= len(text) or text[paren] != "(":
            line = text.count("\n", 0, at) + 1
            raise ValueError(f"{name}:{line}: a launch must read kernel<<<...>>>(args)")
        start = _kernel_start(text, at)
        kernel, config = text[start:at], text[at + 3:close]
        rest = paren + 1
        j = rest
        while j < len(text) and text[j] in " \t\r\n":
            j += 1
        comma = "" if text[j] == ")" else ", "
        out.append(text[pos:start])
        quoted = " ".join(kernel.split()).replace("\\", "\\\\").replace('"', '\\"')
        out.append(f"::msemu::Launch(::msemu::Config({config}), \"{quoted}\", "
                   f"[](auto... msemu_a) {{ {kernel}(msemu_a...); }}{comma}")
        pos = rest
    out.append(text[pos:])
    return f'#line 1 "{name}"\n' + "".join(out)


def main(argv):
    src, dst = argv[1], argv[2]
    with open(src) as f:
        text = f.read()
    with open(dst, "w") as f:
        f.write(rewrite(text, src))


if __name__ == "__main__":
    main(sys.argv)
