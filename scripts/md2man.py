#!/usr/bin/env python3
"""Renders the markdown subset our docs use into a man page (roff, man macros).

    md2man.py --name nightshift.toml --section 5 --summary "..." \
              --version 0.1.0 docs/configuration.md nightshift.toml.5

The docs are the one source: nightshift.toml(5) is docs/configuration.md and
nightshift(1) is docs/man/nightshift.1.md, so a key documented in one place is
documented in both. Handled: headings (# is dropped: NAME comes from --name and
--summary; ## is .SH, ### and deeper .SS), paragraphs, ``` and indented code,
"- " lists, tables (one .TP entry per row: the first cell is the tag, the
others follow as "header: value"), `code`, **bold**, *italic*, [links](url).
Anything else passes through as text, escaped. Standard library only.
"""
import argparse
import re
import sys

# Characters roff would take as requests or escapes, and a few symbols the docs
# use that have portable roff names.
SYMBOLS = {
    "≥": r"\(>=", "≤": r"\(<=", "–": r"\(en", "—": r"\(em", "×": r"\(mu",
    "÷": r"\(di", "→": r"\(->", "←": r"\(<-", "≈": r"\(~~", "·": r"\(md",
    "’": "'", "‘": "`", "“": r"\(lq", "”": r"\(rq", "…": "...", "±": r"\(+-",
}


def escape(text):
    text = text.replace("\\", r"\e")
    for sym, roff in SYMBOLS.items():
        text = text.replace(sym, roff)
    return text


def escape_code(text):
    # In literal text a hyphen is a real minus (options, ranges): \- keeps it
    # one when copied from the terminal.
    return escape(text).replace("-", r"\-")


def inline(text):
    """Markdown inline markup to roff font changes."""
    out = []
    pos = 0
    pattern = re.compile(r"`([^`]+)`|\*\*([^*]+)\*\*|\*([^*\s][^*]*)\*|\[([^\]]+)\]\(([^)]+)\)")
    for m in pattern.finditer(text):
        out.append(escape(text[pos:m.start()]))
        if m.group(1) is not None:
            out.append(r"\fB" + escape_code(m.group(1)) + r"\fR")
        elif m.group(2) is not None:
            out.append(r"\fB" + inline(m.group(2)) + r"\fR")
        elif m.group(3) is not None:
            out.append(r"\fI" + inline(m.group(3)) + r"\fR")
        else:
            out.append(inline(m.group(4)))
        pos = m.end()
    out.append(escape(text[pos:]))
    return "".join(out)


def line_safe(roff_text):
    # A line starting with . or ' would be read as a request.
    if roff_text.startswith((".", "'")):
        return r"\&" + roff_text
    return roff_text


def split_row(line):
    cells = line.strip().strip("|").split("|")
    return [c.strip() for c in cells]


def render(lines, name, section, summary, version):
    out = [
        f'.TH "{name.upper()}" "{section}" "" "nightshift {version}" "nightshift manual"',
        ".SH NAME",
        f"{escape(name)} \\- {escape(summary)}",
    ]
    first = next((l for l in lines if l.strip()), "")
    if not first.startswith("## "):
        out.append(".SH DESCRIPTION")
    i = 0
    paragraph = []

    def flush():
        if paragraph:
            out.append(".PP")
            # Inline markup may span lines (`code` across a line break).
            out.extend(line_safe(l) for l in inline("\n".join(paragraph)).split("\n"))
            paragraph.clear()

    while i < len(lines):
        line = lines[i].rstrip("\n")
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            block = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                block.append(lines[i].rstrip("\n"))
                i += 1
            i += 1  # the closing fence
            out += [".PP", ".RS 4", ".nf"] + [line_safe(escape_code(b)) for b in block] + [".fi", ".RE"]
            continue
        if line.startswith("    ") and not paragraph:
            block = []
            while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                block.append(lines[i].rstrip("\n")[4:])
                i += 1
            while block and not block[-1].strip():
                block.pop()
            out += [".PP", ".RS 4", ".nf"] + [line_safe(escape_code(b)) for b in block] + [".fi", ".RE"]
            continue
        if stripped.startswith("<!--"):
            while i < len(lines) and "-->" not in lines[i]:
                i += 1
            i += 1
            continue
        m = re.match(r"^(#+)\s+(.*)$", stripped)
        if m:
            flush()
            level, title = len(m.group(1)), m.group(2)
            if level == 2:
                out.append(".SH " + inline(title))
            elif level > 2:
                out.append(".SS " + inline(title))
            i += 1
            continue
        if stripped.startswith("|"):
            flush()
            header = split_row(stripped)
            i += 1
            if i < len(lines) and re.match(r"^\s*\|[\s:|-]+\|\s*$", lines[i]):
                i += 1
            while i < len(lines) and lines[i].strip().startswith("|"):
                cells = split_row(lines[i])
                i += 1
                out.append(".TP")
                out.append(line_safe(inline(cells[0])))
                details = [f"{header[k]}: {cells[k]}" for k in range(1, len(cells) - 1)
                           if k < len(header) and cells[k]]
                body = "; ".join(details)
                if len(cells) > 1 and cells[-1]:
                    body = (body + ". " if body else "") + cells[-1]
                if body:
                    out.append(line_safe(inline(body)))
            continue
        if re.match(r"^[-*]\s+", stripped):
            flush()
            item = [re.sub(r"^[-*]\s+", "", stripped)]
            i += 1
            while i < len(lines) and lines[i].startswith("  ") and lines[i].strip() \
                    and not re.match(r"^\s*[-*]\s+", lines[i]):
                item.append(lines[i].strip())
                i += 1
            out.append(r".IP \(bu 2")
            out.extend(line_safe(l) for l in inline("\n".join(item)).split("\n"))
            continue
        if not stripped:
            flush()
            i += 1
            continue
        paragraph.append(stripped)
        i += 1
    flush()
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--section", required=True)
    parser.add_argument("--summary", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("source")
    parser.add_argument("output")
    args = parser.parse_args()
    with open(args.source, encoding="utf-8") as f:
        # HTML comments are notes for the docs' maintainers, not for readers.
        lines = re.sub(r"<!--.*?-->\n?", "", f.read(), flags=re.S).splitlines(keepends=True)
    # The document's own title is replaced by NAME.
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    text = render(lines, args.name, args.section, args.summary, args.version)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
