#!/usr/bin/env python3
"""The documentation agrees with the code, both ways.

Read from the sources (GREYHOLD_SRCDIR, set by make check):

- config keys: the key table of src/lib/config.c against the KEYS
  section of man/greyhold.conf.5 (".It Cm key Pq type, default D[,
  restart]": the key, its type, its default, and "restart" exactly for
  the keys server.c's reload warns about) and against the example
  etc/greyhold.conf (a "#key = default" line each; uncommented as a
  whole, greyhold -n accepts it);
- greyhold's options: long_options and the getopt string of
  src/daemon/main.c against the OPTIONS section of man/greyhold.8 (every
  long and short option, with or without its argument as the code takes
  it, and no flag there that the code lacks), the SYNOPSIS, and
  `greyhold -h`;
- greyholdctl: the command table of src/ctl/main.c and each command's
  options (src/ctl/cmd_*.c) against the COMMANDS section of
  man/greyholdctl.8, and its global options against OPTIONS;
- the metric labels of src/lib/metrics.c against greyhold(8)'s METRICS;
- `mandoc -Tlint` prints nothing for the three pages (skipped without
  mandoc unless GREYHOLD_REQUIRE_E2E=1).

Standard library only.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402


def srcdir():
    path = os.environ.get("GREYHOLD_SRCDIR")
    if not path:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            "..", "..")
    return os.path.abspath(path)


def read(*parts):
    with open(os.path.join(srcdir(), *parts), encoding="utf-8") as f:
        return f.read()


# ---- C sources --------------------------------------------------------------

C_STRING = r'"(?:[^"\\\n]|\\.)*"'


def c_strings(expr):
    """The concatenated value of adjacent C string literals."""
    return "".join(bytes(s[1:-1], "utf-8").decode("unicode_escape")
                   for s in re.findall(C_STRING, expr))


def c_block(text, start_re):
    """The text from the match of start_re to the closing '};' or '}'."""
    m = re.search(start_re, text, re.M)
    if not m:
        raise AssertionError("not found in the source: %s" % start_re)
    end = re.compile(r"^\}", re.M).search(text, m.end())
    return text[m.end():end.start()]


# Macros the key table's defaults use, as a default build resolves them
# (the man pages document the /etc and /var paths).
PATH_MACROS = {"SYSCONFDIR": "/etc", "LOCALSTATEDIR": "/var"}


def header_macros():
    """#define NAME "literal" from the library's headers."""
    out = dict(PATH_MACROS)
    libdir = os.path.join(srcdir(), "src", "lib")
    for name in os.listdir(libdir):
        if name.endswith(".h"):
            with open(os.path.join(libdir, name)) as f:
                for m in re.finditer(r"^#define (\w+) (%s)$" % C_STRING,
                                     f.read(), re.M):
                    out[m.group(1)] = c_strings(m.group(2))
    return out


def config_keys():
    """[(key, type, field, default or None)] from config.c's key table."""
    block = c_block(read("src", "lib", "config.c"),
                    r"^static const struct key keys\[\] = \{")
    macros = header_macros()
    keys = []
    for m in re.finditer(r'\{"([a-z0-9_]+)",\s*KT_(\w+),\s*OFF\((\w+)\),'
                         r'\s*((?:%s|[A-Z_]+|\s)+),' % C_STRING, block):
        parts = re.findall(r"%s|[A-Z_]+" % C_STRING, m.group(4))
        default = ""
        for p in parts:
            if p.startswith('"'):
                default += c_strings(p)
            elif p in macros:
                default += macros[p]
            else:
                default = None
                break
        keys.append((m.group(1), m.group(2), m.group(3), default))
    if len(keys) != block.count("KT_"):
        raise AssertionError("parsed %d of the %d entries of config.c's "
                             "key table" % (len(keys), block.count("KT_")))
    return keys


def restart_only_fields():
    """Config fields whose change warn_restart_only() reports."""
    body = c_block(read("src", "daemon", "server.c"),
                   r"^warn_restart_only\(.*\)\n\{")
    return set(re.findall(r"old->(\w+)", body))


def parse_long_options(block):
    """{name: (has_arg, short letter or None)} from a struct option array."""
    out = {}
    for m in re.finditer(r'\{"([a-z0-9-]+)",\s*(no_argument|'
                         r"required_argument|optional_argument),\s*NULL,"
                         r"\s*('(.)'|\w+)\}", block):
        out[m.group(1)] = (m.group(2).split("_")[0], m.group(4))
    return out


def parse_optstring(text):
    """{letter: 'no'|'required'|'optional'} from a getopt string."""
    text = text.lstrip("+-")
    out = {}
    for m in re.finditer(r"([A-Za-z0-9])(::|:)?", text):
        out[m.group(1)] = {None: "no", ":": "required",
                           "::": "optional"}[m.group(2)]
    return out


def getopt_string(text):
    m = re.search(r'getopt_long\(argc, argv, "([^"]*)"', text)
    if not m:
        raise AssertionError("no getopt_long call")
    return m.group(1)


def greyhold_options():
    text = read("src", "daemon", "main.c")
    longs = parse_long_options(c_block(
        text, r"^static const struct option long_options\[\] = \{"))
    return longs, parse_optstring(getopt_string(text))


def ctl_global_options():
    text = read("src", "ctl", "main.c")
    main = c_block(text, r"^main\(int argc, char \*\*argv\)\n\{")
    return parse_long_options(main), parse_optstring(getopt_string(main))


def ctl_commands():
    """[(name, sub or None, function)] from greyholdctl's command table."""
    block = c_block(read("src", "ctl", "main.c"),
                    r"^static const struct command commands\[\] = \{")
    out = []
    for m in re.finditer(r'\{"([a-z-]+)",\s*(?:NULL|"([a-z-]+)"),\s*'
                         r'(?:%s\s*)+,\s*(cmd_\w+)\}' % C_STRING, block):
        out.append((m.group(1), m.group(2), m.group(3)))
    if len(out) != len(re.findall(r"\bcmd_\w+\}", block)):
        raise AssertionError("could not parse greyholdctl's command table")
    return out


def c_functions(text):
    """{name: body} of the functions defined in a C file."""
    out = {}
    for m in re.finditer(r"^(\w+)\([^;{]*?\)\n\{", text, re.M):
        out[m.group(1)] = c_block(text[m.start():], r"^\{")
    return out


def ctl_command_options():
    """{function: (long options, short options)} for every cmd_* function,
    with the options parsed by the functions of its file that it calls."""
    out = {}
    ctldir = os.path.join(srcdir(), "src", "ctl")
    for name in sorted(os.listdir(ctldir)):
        if not (name.startswith("cmd_") and name.endswith(".c")):
            continue
        with open(os.path.join(ctldir, name)) as f:
            funcs = c_functions(f.read())
        for fn in funcs:
            if not fn.startswith("cmd_"):
                continue
            seen, todo = set(), [fn]
            longs, shorts = {}, {}
            while todo:
                f = todo.pop()
                if f in seen:
                    continue
                seen.add(f)
                body = funcs[f]
                longs.update(parse_long_options(body))
                if "getopt_long" in body:
                    shorts.update(parse_optstring(getopt_string(body)))
                todo += [g for g in re.findall(r"\b(\w+)\(", body)
                         if g in funcs and not g.startswith("cmd_")]
            out[fn] = (longs, shorts)
    return out


def metric_labels():
    """(actions, reasons) of greyhold_requests_total, from metrics.c."""
    block = c_block(read("src", "lib", "metrics.c"),
                    r"^\} result_labels\[RESULT_MAX\] = \{")
    pairs = re.findall(r'\{"(\w+)", "(\w+)"\}', block)
    return {a for a, _ in pairs}, {r for _, r in pairs}


# ---- mdoc -------------------------------------------------------------------

def mdoc_tokens(line):
    """The words of an mdoc line (without the leading '.'), quotes kept
    together."""
    return [w.strip('"') for w in re.findall(r'"[^"]*"|\S+', line.lstrip("."))]


def is_macro(word):
    return re.match(r"^[A-Z][a-z]{1,2}$", word) is not None


def sections(path):
    """{'OPTIONS': [lines], ...} of a man page."""
    out = {}
    current = None
    with open(path, encoding="utf-8") as f:
        for line in f.read().split("\n"):
            if line.startswith(".Sh "):
                current = line[4:].strip().strip('"')
                out[current] = []
            elif current is not None:
                out[current].append(line)
    return out


def list_items(lines):
    """[(head lines, body lines)] of the items of the outermost lists in
    `lines`; the head of an '.It Xo' runs to its '.Xc'."""
    items = []
    depth = 0
    in_head = False
    for line in lines:
        if line.startswith(".Bl"):
            depth += 1
        elif line.startswith(".El"):
            depth -= 1
        if depth == 1 and line.startswith(".It"):
            items.append(([line], []))
            in_head = mdoc_tokens(line)[-1:] == ["Xo"]
            continue
        if not items or depth == 0:
            continue
        if in_head:
            items[-1][0].append(line)
            if line.startswith(".Xc"):
                in_head = False
        else:
            items[-1][1].append(line)
    return items


def flags(line):
    """[(flag, argument)] of the .Fl macros of an mdoc line.

    flag is '--name' or '-x'; argument is 'no', 'required' (an Ar after
    the flag) or 'optional' (an Op after it), up to the next ',' or Fl.
    """
    words = mdoc_tokens(line)
    out = []
    i = 0
    while i < len(words):
        if words[i] != "Fl":
            i += 1
            continue
        i += 1
        names = []
        while i < len(words) and not is_macro(words[i]):
            w = words[i]
            if re.match(r"^-[a-z0-9][a-z0-9-]*$", w):
                names.append("-" + w)
            elif re.match(r"^[A-Za-z0-9]+$", w):
                names += ["-" + c for c in w]
            elif w not in ("|", "-"):
                break       # punctuation ends the flag's arguments
            i += 1
        seg = []
        j = i
        while j < len(words) and words[j] not in (",", "Fl"):
            seg.append(words[j])
            j += 1
        arg = ("optional" if "Op" in seg else
               "required" if "Ar" in seg else "no")
        out += [(n, arg) for n in names]
    return out


def section_flags(lines):
    return [f for line in lines if line.startswith(".") for f in flags(line)]


# ---- the tests --------------------------------------------------------------

class ConfigKeysDocumented(unittest.TestCase):

    TYPE_WORDS = {
        "BOOL": "boolean", "UINT": "number", "DURATION": "duration",
        "SIZE": "size", "MODE": "octal mode", "STRING": "string",
        "LIST": "list", "DURABILITY": "Cm full No or Cm relaxed",
        "ACTION": "action", "FAILURE": "action or DUNNO", "TEXT": "text",
        "HEADER": "header template",
    }
    # Defaults the page states as what an empty value means.
    DERIVED_DEFAULTS = {"privacy_key_file": "DBDIR/privacy.key"}

    @classmethod
    def setUpClass(cls):
        cls.keys = config_keys()
        cls.names = [k[0] for k in cls.keys]
        cls.page = sections(os.path.join(srcdir(), "man", "greyhold.conf.5"))
        cls.documented = {}
        for head, _ in list_items(cls.page["KEYS"]):
            words = mdoc_tokens(head[0])
            if len(words) >= 3 and words[:2] == ["It", "Cm"] and \
                    re.match(r"^[a-z][a-z0-9_]*$", words[2]):
                if words[2] in cls.documented:
                    raise AssertionError("%s documented twice" % words[2])
                cls.documented[words[2]] = head[0]

    def test_every_key_is_in_greyhold_conf_5(self):
        missing = [k for k in self.names if k not in self.documented]
        self.assertEqual(missing, [], "keys of config.c without an "
                         "'.It Cm key' in greyhold.conf(5)'s KEYS")

    def test_every_documented_key_exists(self):
        unknown = sorted(set(self.documented) - set(self.names))
        self.assertEqual(unknown, [], "greyhold.conf(5) documents keys "
                         "config.c does not have")

    def pq(self, key):
        line = self.documented[key]
        m = re.match(r"^\.It Cm %s Pq (.*)$" % key, line)
        self.assertIsNotNone(m, "no '.It Cm %s Pq type, default ...' line: "
                             "%r" % (key, line))
        return m.group(1).replace(" ,", ",")

    def test_types_defaults_and_restart_marks_agree(self):
        restart_fields = restart_only_fields()
        problems = []
        for key, kt, field, default in self.keys:
            if key not in self.documented:
                continue
            pq = self.pq(key)
            restart = pq.endswith(", restart")
            if restart:
                pq = pq[:-len(", restart")]
            if not pq.startswith(self.TYPE_WORDS[kt] + ","):
                problems.append("%s: type is %s, page says %r"
                                % (key, kt, pq))
            m = re.search(r"\bdefault (.*)$", pq)
            doc = m.group(1) if m else None
            if doc is not None and doc.startswith("Dq "):
                doc = doc[3:]
            if default is not None:
                want = self.DERIVED_DEFAULTS.get(key, default or "none")
                if doc != want:
                    problems.append("%s: default %r in config.c, %r in the "
                                    "page" % (key, default, doc))
            if restart != (field in restart_fields):
                problems.append("%s: %s 'restart' in the page, but a reload "
                                "%s it" % (key, "marked" if restart else
                                           "not marked", "does not apply"
                                           if field in restart_fields
                                           else "applies"))
        self.assertEqual(problems, [])

    def example_lines(self):
        """{key: value} of the '#key = value' lines of etc/greyhold.conf."""
        out = {}
        for line in read("etc", "greyhold.conf").split("\n"):
            m = re.match(r"^#?([a-z][a-z0-9_]*) =(?: (.*))?$", line)
            if m:
                self.assertNotIn(m.group(1), out, "twice in the example")
                out[m.group(1)] = m.group(2) or ""
        return out

    def test_every_key_is_in_the_example_config_and_back(self):
        example = self.example_lines()
        self.assertEqual([k for k in self.names if k not in example], [],
                         "keys without a '#key =' line in etc/greyhold.conf")
        self.assertEqual(sorted(set(example) - set(self.names)), [],
                         "etc/greyhold.conf names keys config.c lacks")
        # "Every setting below is commented out at its default value"
        wrong = ["%s = %s (default %r)" % (k, example[k], d)
                 for k, _, _, d in self.keys
                 if d and k in example and example[k] != d]
        self.assertEqual(wrong, [])

    def test_example_config_uncommented_is_valid(self):
        text = "".join("%s = %s\n" % kv for kv in self.example_lines().items())
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
            f.write(text)
            f.flush()
            r = subprocess.run([harness.greyhold_bin(), "-n", "-c", f.name],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT,
                               universal_newlines=True, timeout=30)
        self.assertEqual(r.returncode, 0, "greyhold -n on etc/greyhold.conf "
                         "with every line uncommented:\n%s\n%s"
                         % (r.stdout, text))


class GreyholdOptionsDocumented(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.longs, cls.shorts = greyhold_options()
        cls.page = sections(os.path.join(srcdir(), "man", "greyhold.8"))

    def option_heads(self):
        """{flag: argument} of the flags that head an item of OPTIONS,
        nested lists included."""
        out = {}
        for line in self.page["OPTIONS"]:
            if line.startswith(".It "):
                for flag, arg in flags(line):
                    self.assertNotIn(flag, out, "%s has two items" % flag)
                    out[flag] = arg
        return out

    def code_flags(self):
        out = {"--" + name: arg for name, (arg, _) in self.longs.items()}
        out.update({"-" + c: arg for c, arg in self.shorts.items()})
        return out

    def test_every_option_has_an_item_with_its_argument(self):
        heads = self.option_heads()
        code = self.code_flags()
        missing = sorted(f for f in code if f not in heads)
        self.assertEqual(missing, [], "options of main.c without an item in "
                         "greyhold(8)'s OPTIONS")
        wrong = ["%s takes %s argument, the page shows %s" % (f, code[f],
                                                               heads[f])
                 for f in sorted(code) if f in heads and heads[f] != code[f]]
        self.assertEqual(wrong, [])

    def test_short_letters_pair_with_their_long_names(self):
        heads = {}
        for line in self.page["OPTIONS"]:
            if line.startswith(".It "):
                names = [f for f, _ in flags(line)]
                for f in names:
                    heads[f] = names
        for name, (_, short) in self.longs.items():
            if short is None:
                continue
            self.assertIn(short, self.shorts, "--%s's letter %s is not in "
                          "the getopt string" % (name, short))
            self.assertIn("-" + short, heads.get("--" + name, []),
                          "--%s and -%s not in one item" % (name, short))

    def test_every_documented_flag_exists(self):
        code = self.code_flags()
        for part in ("OPTIONS", "SYNOPSIS"):
            unknown = sorted({f for f, _ in section_flags(self.page[part])
                              if f not in code})
            self.assertEqual(unknown, [], "flags in greyhold(8)'s %s that "
                             "main.c does not take" % part)

    def test_refused_postgrey_options_are_not_offered(self):
        # MIGRATING FROM POSTGREY names options greyhold refuses: none of
        # them may be an option of the code.
        text = "\n".join(self.page["MIGRATING FROM POSTGREY"])
        m = re.search(r"refuses.*?postgrey options it does not have(.*?)"
                      r"^\.It$", text, re.S | re.M)
        self.assertIsNotNone(m, "the list of refused postgrey options moved")
        refused = {f for line in m.group(1).split("\n") for f, _ in
                   flags(line)}
        self.assertTrue(refused)
        self.assertEqual(sorted(refused & set(self.code_flags())), [])
        # ... and the daemon refuses them with exit status 2.
        for flag in sorted(refused):
            r = subprocess.run([harness.greyhold_bin(), "-n", "-c",
                                "/dev/null", flag], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=30)
            self.assertEqual(r.returncode, 2, flag)

    def test_help_mentions_every_option(self):
        r = subprocess.run([harness.greyhold_bin(), "-h"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=30)
        self.assertEqual(r.returncode, 0)
        words = set(re.findall(r"(?<![\w-])(--?[A-Za-z0-9][\w-]*)", r.stdout))
        missing = sorted(f for f in self.code_flags() if f not in words)
        self.assertEqual(missing, [], "options missing from greyhold -h:\n"
                         + r.stdout)
        unknown = sorted(f for f in words if f not in self.code_flags())
        self.assertEqual(unknown, [], "greyhold -h offers options main.c "
                         "lacks")


class GreyholdctlDocumented(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.page = sections(os.path.join(srcdir(), "man", "greyholdctl.8"))
        cls.commands = ctl_commands()
        cls.cmd_options = ctl_command_options()
        cls.items = []          # (name, sub, head flags, every flag)
        for head, body in list_items(cls.page["COMMANDS"]):
            words = []
            for line in head:
                ws = mdoc_tokens(line)
                if "Ic" in ws:
                    for w in ws[ws.index("Ic") + 1:]:
                        if is_macro(w) or not re.match(r"^[a-z-]+$", w):
                            break
                        words.append(w)
                    break
            if not words:
                raise AssertionError("COMMANDS item without a command: %r"
                                     % head)
            head_flags = [f for line in head for f in flags(line)]
            all_flags = head_flags + [f for line in body
                                      if line.startswith(".")
                                      for f in flags(line)]
            cls.items.append((words[0], words[1] if len(words) > 1 else None,
                              head_flags, all_flags))

    def command_key(self, name, sub):
        return name + (" " + sub if sub else "")

    def test_every_command_is_documented_and_back(self):
        table = {self.command_key(n, s) for n, s, _ in self.commands}
        documented = {self.command_key(n, s) for n, s, _, _ in self.items}
        self.assertEqual(sorted(table - documented), [],
                         "commands without an item in greyholdctl(8)")
        self.assertEqual(sorted(documented - table), [],
                         "greyholdctl(8) documents commands the table lacks")

    def test_command_options_are_documented_and_back(self):
        problems = []
        for name, sub, fn in self.commands:
            longs, shorts = self.cmd_options.get(fn, ({}, {}))
            code = {"--" + n: a for n, (a, _) in longs.items()}
            head = {}
            every = set()
            for n, s, head_flags, all_flags in self.items:
                if (n, s) == (name, sub):
                    head.update(head_flags)
                    every.update(f for f, _ in all_flags)
            cmd = self.command_key(name, sub)
            for f, arg in sorted(code.items()):
                if f not in head:
                    problems.append("%s: %s not in its item's head" % (cmd, f))
                elif head[f] != arg:
                    problems.append("%s: %s takes %s argument, the page "
                                    "shows %s" % (cmd, f, arg, head[f]))
            for f in sorted(set(head) - set(code)):
                problems.append("%s: the page offers %s, the code does not "
                                "take it" % (cmd, f))
            for c in sorted(shorts):
                if "-" + c not in every:
                    problems.append("%s: -%s accepted but not documented"
                                    % (cmd, c))
        self.assertEqual(problems, [])

    def test_global_options_are_documented_and_back(self):
        longs, shorts = ctl_global_options()
        code = {"--" + n: a for n, (a, _) in longs.items()}
        code.update({"-" + c: a for c, a in shorts.items()})
        heads = {}
        for line in self.page["OPTIONS"]:
            if line.startswith(".It "):
                heads.update(flags(line))
        self.assertEqual(sorted(f for f in code if f not in heads), [],
                         "global options without an item in greyholdctl(8)'s "
                         "OPTIONS")
        self.assertEqual(sorted(f for f in heads if f not in code), [],
                         "greyholdctl(8)'s OPTIONS offers options main.c "
                         "lacks")
        wrong = sorted("%s: code %s, page %s" % (f, code[f], heads[f])
                       for f in code if f in heads and heads[f] != code[f])
        self.assertEqual(wrong, [])
        synopsis = {f for f, _ in section_flags(self.page["SYNOPSIS"])}
        self.assertEqual(sorted(synopsis - set(code)), [])


class MetricsDocumented(unittest.TestCase):

    def test_every_request_label_is_in_greyhold_8(self):
        page = sections(os.path.join(srcdir(), "man", "greyhold.8"))
        words = set()
        for line in page["METRICS"]:
            if line.startswith("."):
                words.update(w.strip(",") for w in mdoc_tokens(line))
        actions, reasons = metric_labels()
        self.assertEqual(len(reasons), 16)
        self.assertEqual(sorted((actions | reasons) - words), [],
                         "labels of greyhold_requests_total missing from "
                         "greyhold(8)'s METRICS")


class ManPagesLint(unittest.TestCase):

    def test_mandoc_lint_is_silent(self):
        mandoc = shutil.which("mandoc")
        if mandoc is None:
            if os.environ.get("GREYHOLD_REQUIRE_E2E") == "1":
                self.fail("mandoc not installed (GREYHOLD_REQUIRE_E2E=1)")
            self.skipTest("mandoc not installed")
        for page in ("greyhold.8", "greyhold.conf.5", "greyholdctl.8"):
            r = subprocess.run([mandoc, "-Tlint",
                                os.path.join(srcdir(), "man", page)],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT,
                               universal_newlines=True, timeout=60)
            self.assertEqual((r.returncode, r.stdout), (0, ""), page)


if __name__ == "__main__":
    unittest.main(verbosity=2)
