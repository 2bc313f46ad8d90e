"""Dry runs of every tcl script under tclsh: hls_src/build_prj.tcl (Vitis HLS), vivado/tcl/build.tcl
and vivado/tcl/block_design.tcl (Vivado).  The vendor commands are recording stand-ins; a command
the script calls that has no stand-in fails the run (`unknown`), and every option a script passes is
checked against the tables below of the options the vendor documents for that command.

Neither Vitis HLS nor Vivado runs here, so this is the evidence that the scripts parse, run to the
end, call the flow in the documented order with the documented options, take their targets from the
one description (hls_config.PARTS through hls_src/generated/lenet5_parts.tcl, board_design.BOARDS
through design_params.tcl) and refuse bad arguments before any tool command.  The Tcl 8.6 additions
(lmap, try, string cat, ...) are removed from the interpreter first: the tools may embed Tcl 8.5.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from lenet5_pynq import board_design, export, hls_config, hls_headers

REPO = Path(__file__).resolve().parents[1]
HLS_SRC = REPO / "hls_src"
BUILD_PRJ = HLS_SRC / "build_prj.tcl"
OVERLAY_TCL = REPO / "vivado" / "tcl"
TCLSH = shutil.which("tclsh")

pytestmark = pytest.mark.skipif(TCLSH is None, reason="needs tclsh (tcl 8.6)")

# --------------------------------------------------------------------------- documented options
# command: ({option: None (a flag) | ANY (takes a value) | {allowed values}}, (min, max positional))
ANY = object()
UNLIMITED = math.inf

# Vitis HLS Tcl commands as UG1399 (Vitis High-Level Synthesis User Guide, "Vitis HLS Command
# Reference": Project Commands and Configuration Commands) documents them, 2022.2 to 2025.2.
# Looked up in UG1399: add_files, open_project, open_solution, set_part, create_clock,
# csim_design, csynth_design, cosim_design, export_design, config_csim, config_export.
# set_top and exit take no options.
# csim_design and config_csim take the same options; export_design and config_export differ in -flow.
_CSIM_OPTIONS = {
    "-O": None,
    "-argv": ANY,
    "-clean": None,
    "-ldflags": ANY,
    "-mflags": ANY,
    "-profile": None,
    "-setup": None,
    "-sanitize_address": None,
    "-sanitize_undefined": None,
}
_EXPORT_OPTIONS = {
    "-description": ANY,
    "-display_name": ANY,
    "-format": {"ip_catalog", "xo", "syn_dcp", "sysgen"},
    "-ipname": ANY,
    "-library": ANY,
    "-output": ANY,
    "-rtl": {"verilog", "vhdl"},
    "-taxonomy": ANY,
    "-vendor": ANY,
    "-version": ANY,
}
VITIS_HLS = {
    "open_project": ({"-reset": None, "-upgrade": None, "-ide": {"classic", "vitis"}}, (1, 1)),
    "set_top": ({}, (1, 1)),
    "add_files": ({"-blackbox": ANY, "-cflags": ANY, "-csimflags": ANY, "-tb": None}, (1, UNLIMITED)),
    "open_solution": ({"-flow_target": {"vivado", "vitis"}, "-reset": None}, (1, 1)),
    "set_part": ({"-board": None}, (1, 1)),
    "create_clock": ({"-period": ANY, "-name": ANY}, (0, 0)),
    "csim_design": (
        _CSIM_OPTIONS,
        (0, 0),
    ),
    "csynth_design": ({"-dump_cfg": None, "-dump_post_cfg": None, "-synthesis_check": None}, (0, 0)),
    "cosim_design": (
        {
            "-O": None,
            "-argv": ANY,
            "-compiled_library_dir": ANY,
            "-coverage": None,
            "-disable_binary_tv": None,
            "-disable_deadlock_detection": None,
            "-disable_dependency_check": None,
            "-enable_dataflow_profiling": None,
            "-enable_fifo_sizing": None,
            "-enable_tasks_with_m_axi": None,
            "-hwemu_trace_dir": ANY,
            "-ldflags": ANY,
            "-mflags": ANY,
            "-random_stall": None,
            "-rtl": {"verilog", "vhdl"},
            "-setup": None,
            "-stable_axilite_update": None,
            "-tool": ANY,
            "-trace_level": {"none", "all", "port", "port_hier"},
            "-user_stall": ANY,
            "-wave_debug": None,
        },
        (0, 0),
    ),
    "export_design": (
        {**_EXPORT_OPTIONS, "-flow": {"syn", "impl"}},
        (0, 0),
    ),
    "config_csim": (
        _CSIM_OPTIONS,
        (0, 0),
    ),
    "config_export": (
        {**_EXPORT_OPTIONS, "-flow": {"none", "syn", "impl"}},  # config_export adds none
        (0, 0),
    ),
    "exit": ({}, (0, 1)),
}

# Vivado Tcl commands as UG835 (Vivado Design Suite Tcl Command Reference Guide), 2021.1 to 2025.2,
# gives their syntax; every one also takes -quiet and -verbose.  Looked up in UG835: create_project,
# set_property, update_ip_catalog, get_ipdefs, get_files, generate_target, make_wrapper (the file is
# positional: <files>), current_fileset, update_compile_order, launch_runs, wait_on_runs (2022.2+),
# get_runs, open_run, report_utilization, report_timing_summary, get_timing_paths, create_bd_design,
# create_bd_cell, apply_bd_automation, connect_bd_intf_net, connect_bd_net, get_bd_pins,
# get_bd_addr_spaces, get_bd_addr_segs, assign_bd_address, validate_bd_design, save_bd_design.
# From the same pattern, not looked up one by one: current_project, current_bd_design,
# get_property, get_bd_intf_pins.
_QV = {"-quiet": None, "-verbose": None}
_GET_BD = {"-regexp": None, "-hierarchical": None, "-filter": ANY, "-of_objects": ANY, **_QV}
VIVADO = {
    "create_project": (
        {"-part": ANY, "-force": None, "-in_memory": None, "-ip": None, "-rtl_kernel": None, **_QV},
        (0, 2),
    ),
    "current_project": (dict(_QV), (0, 1)),
    "set_property": ({"-dict": ANY, **_QV}, (1, UNLIMITED)),
    "get_property": ({"-min": None, "-max": None, **_QV}, (2, 2)),
    "update_ip_catalog": (
        {
            "-rebuild": None,
            "-add_ip": ANY,
            "-delete_ip": ANY,
            "-delete_mult_ip": ANY,
            "-disable_ip": ANY,
            "-enable_ip": ANY,
            "-add_interface": ANY,
            "-create_index": None,
            "-repo_path": ANY,
            "-update_module_ref": None,
            **_QV,
        },
        (0, 0),
    ),
    "get_ipdefs": (
        {"-name": None, "-regexp": None, "-nocase": None, "-filter": ANY, "-of_objects": ANY, "-all": None, **_QV},
        (0, UNLIMITED),
    ),
    "get_files": (
        {
            "-regexp": None,
            "-nocase": None,
            "-filter": ANY,
            "-compile_order": ANY,
            "-used_in": ANY,
            "-references": None,
            "-all": None,
            "-of_objects": ANY,
            **_QV,
        },
        (0, UNLIMITED),
    ),
    "generate_target": ({"-force": None, **_QV}, (2, 2)),
    "make_wrapper": (
        {
            "-top": None,
            "-testbench": None,
            "-inst_template": None,
            "-fileset": ANY,
            "-import": None,
            "-force": None,
            **_QV,
        },
        (1, 1),
    ),
    "current_fileset": ({"-constrset": None, "-simset": None, **_QV}, (0, UNLIMITED)),
    "update_compile_order": ({"-force_gui": None, "-fileset": ANY, **_QV}, (0, 0)),
    "launch_runs": (
        {
            "-jobs": ANY,
            "-scripts_only": None,
            "-lsf": ANY,
            "-sge": ANY,
            "-cluster_configuration": ANY,
            "-dir": ANY,
            "-to_step": ANY,
            "-next_step": None,
            "-host": ANY,
            "-remote_cmd": ANY,
            "-email_to": ANY,
            "-email_all": None,
            "-pre_launch_script": ANY,
            "-post_launch_script": ANY,
            "-custom_script": ANY,
            "-force": None,
            **_QV,
        },
        (1, UNLIMITED),
    ),
    "wait_on_runs": (
        {"-timeout": ANY, "-exit_condition": {"ALL", "ANY_ONE", "ANY_ONE_MET_TIMING"}, **_QV},
        (1, UNLIMITED),
    ),
    "get_runs": ({"-regexp": None, "-nocase": None, "-filter": ANY, "-of_objects": ANY, **_QV}, (0, UNLIMITED)),
    "open_run": ({"-name": ANY, "-pr_config": ANY, **_QV}, (1, 1)),
    "report_utilization": (
        {
            "-file": ANY,
            "-append": None,
            "-pblocks": ANY,
            "-evaluate_pblock": None,
            "-exclude_child_pblocks": None,
            "-exclude_non_assigned": None,
            "-cells": ANY,
            "-return_string": None,
            "-slr": None,
            "-packthru": None,
            "-name": ANY,
            "-no_primitives": None,
            "-omit_locs": None,
            "-hierarchical": None,
            "-spreadsheet_file": ANY,
            "-spreadsheet_table": ANY,
            "-spreadsheet_depth": ANY,
            "-hierarchical_depth": ANY,
            "-hierarchical_percentages": None,
            **_QV,
        },
        (0, 0),
    ),
    "report_timing_summary": (
        {
            "-check_timing_verbose": None,
            "-delay_type": {"max", "min", "min_max"},
            "-no_detailed_paths": None,
            "-setup": None,
            "-hold": None,
            "-max_paths": ANY,
            "-nworst": ANY,
            "-unique_pins": None,
            "-path_type": ANY,
            "-no_reused_label": None,
            "-input_pins": None,
            "-no_pr_attribute": None,
            "-no_pblock": None,
            "-routable_nets": None,
            "-slack_lesser_than": ANY,
            "-report_unconstrained": None,
            "-significant_digits": ANY,
            "-no_header": None,
            "-file": ANY,
            "-append": None,
            "-name": ANY,
            "-return_string": None,
            "-warn_on_violation": None,
            "-datasheet": None,
            "-cells": ANY,
            "-rpx": ANY,
            **_QV,
        },
        (0, 0),
    ),
    "get_timing_paths": (
        {
            "-from": ANY,
            "-to": ANY,
            "-through": ANY,
            "-delay_type": ANY,
            "-setup": None,
            "-hold": None,
            "-max_paths": ANY,
            "-nworst": ANY,
            "-unique_pins": None,
            "-slack_lesser_than": ANY,
            "-slack_greater_than": ANY,
            "-group": ANY,
            "-filter": ANY,
            "-regexp": None,
            "-nocase": None,
            **_QV,
        },
        (0, 0),
    ),
    "create_bd_design": ({"-dir": ANY, "-cell": ANY, **_QV}, (1, 1)),
    "current_bd_design": (dict(_QV), (0, 1)),
    "create_bd_cell": (
        {
            "-vlnv": ANY,
            "-type": {"IP", "ip", "hier", "container", "module", "inline_hdl"},
            "-reference": ANY,
            "-revision": ANY,
            **_QV,
        },
        (1, 1),
    ),
    "apply_bd_automation": ({"-rule": ANY, "-config": ANY, "-dict": ANY, "-opts": ANY, **_QV}, (1, UNLIMITED)),
    "connect_bd_intf_net": ({"-intf_net": ANY, "-boundary_type": {"upper", "lower", "both"}, **_QV}, (2, 3)),
    "connect_bd_net": ({"-net": ANY, "-boundary_type": {"upper", "lower", "both"}, **_QV}, (1, UNLIMITED)),
    "get_bd_pins": (dict(_GET_BD), (0, UNLIMITED)),
    "get_bd_intf_pins": (dict(_GET_BD), (0, UNLIMITED)),
    "get_bd_addr_spaces": (dict(_GET_BD), (0, UNLIMITED)),
    "get_bd_addr_segs": (
        {
            **_GET_BD,
            "-excluded": None,
            "-addressed": None,
            "-unaddressed": None,
            "-addressing": None,
            "-addressables": None,
        },
        (0, UNLIMITED),
    ),
    "assign_bd_address": (
        {
            "-target_address_space": ANY,
            "-boundary": None,
            "-master_boundary": None,
            "-external": None,
            "-dict": ANY,
            "-import_from_file": ANY,
            "-export_to_file": ANY,
            "-offset": ANY,
            "-range": ANY,
            "-force": None,
            **_QV,
        },
        (0, UNLIMITED),
    ),
    "validate_bd_design": ({"-force": None, "-design": ANY, "-include_pfm": None, **_QV}, (0, 0)),
    "save_bd_design": (dict(_QV), (0, 1)),
    "exit": ({}, (0, 1)),
}


def check_options(table: dict, call: list[str]) -> None:
    """Every option of `call` is one the vendor documents for the command, with a value where it
    takes one (and one of the documented values where they are enumerated); the number of
    positional arguments is in the documented range."""
    name, args = call[0], call[1:]
    assert name in table, f"{name}: no entry in the documented-options table"
    options, (low, high) = table[name]
    positional, i = [], 0
    while i < len(args):
        arg = args[i]
        if arg in options:
            spec = options[arg]
            if spec is not None:
                assert i + 1 < len(args), f"{name} {arg}: needs a value"
                if spec is not ANY:
                    assert args[i + 1] in spec, f"{name} {arg} {args[i + 1]!r}: documented values are {sorted(spec)}"
                i += 1
        elif arg.startswith("-") and not _is_number(arg):
            raise AssertionError(f"{name}: option {arg} is not documented (known: {sorted(options)})")
        else:
            positional.append(arg)
        i += 1
    assert low <= len(positional) <= high, (
        f"{name}: {len(positional)} positional arguments {positional}, documented {low}..{high}"
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


# ------------------------------------------------------------------------------- the harness
HARNESS = r"""
# Recording stand-ins for the vendor commands (tests/test_tcl.py); every call is one JSON line.
set ::__out [open $::__out_path w]
set ::__jmap [list "\\" "\\\\" "\"" "\\\"" "\n" "\\n" "\r" "\\r" "\t" "\\t"]
proc __json {s} { return "\"[string map $::__jmap $s]\"" }
proc __record {name argl} {
    set items [list [__json $name]]
    foreach a $argl { lappend items [__json $a] }
    puts $::__out "\[[join $items ,]\]"
}
rename exit __real_exit
proc exit {args} { __record exit $args; return -code error -errorcode {DRYRUN EXIT} "exit $args" }
proc unknown {args} {
    __record __unknown__ [list [lindex $args 0]]
    return -code error -errorcode {DRYRUN UNKNOWN} "no stand-in for '[lindex $args 0]'"
}
# a stand-in returning a fixed value, or its last argument (a plausible object name)
proc __stub {name args} {
    if {[llength $args]} {
        proc ::$name args "__record [list $name] \$args; return [list [lindex $args 0]]"
    } else {
        proc ::$name args "__record [list $name] \$args; return \[lindex \$args end\]"
    }
}
"""

# Tcl 8.6 additions the scripts must not use: the tools' embedded interpreter may be 8.5 (the
# harness above is loaded first, so it may).  Removed commands end up in `unknown`, which fails.
TCL85_ONLY = r"""
foreach __cmd {lmap try throw tailcall coroutine yield yieldto zlib} {
    if {[llength [info commands ::$__cmd]]} { rename ::$__cmd {} }
}
foreach {__ens __subs} {string {cat} dict {map} file {tempfile} info {class object coroutine}} {
    set __map [namespace ensemble configure $__ens -map]
    foreach __sub $__subs { dict unset __map $__sub }
    namespace ensemble configure $__ens -map $__map
}
"""

FINISH = r"""
set ::argc [llength $::argv]
set ::argv0 $::__script
set __rc [catch {source $::__script} __msg __opts]
if {$__rc == 1 && [dict get $__opts -errorcode] eq {DRYRUN EXIT}} {
    set __status exit
} elseif {$__rc} {
    set __status error
} else {
    set __status end
}
puts $::__out "\{\"status\": [__json $__status], \"message\": [__json $__msg]\}"
close $::__out
__real_exit 0
"""


def tcl_word(text: str) -> str:
    """`text` as one tcl word (backslash-quoted)."""
    if text == "":
        return "{}"
    return "".join(c if c.isalnum() or c in "-_=./,:+" else "\\" + c for c in str(text))


class DryRun:
    def __init__(self, calls, status, message):
        self.calls, self.status, self.message = calls, status, message

    @property
    def names(self):
        return [c[0] for c in self.calls]

    def first(self, name):
        return next(c for c in self.calls if c[0] == name)

    def all(self, name):
        return [c for c in self.calls if c[0] == name]

    def option(self, call, opt):
        return call[call.index(opt) + 1]

    def assert_clean(self, table):
        unknown = [c[1] for c in self.calls if c[0] == "__unknown__"]
        assert not unknown, f"commands without a stand-in: {unknown}"
        for call in self.calls:
            check_options(table, call)


def dry_run(script: Path, argv, table, tmp_path: Path, extra_tcl: str = "", env=None, cwd=None) -> DryRun:
    out = tmp_path / f"calls_{len(list(tmp_path.glob('calls_*')))}.jsonl"
    stubs = "\n".join(f"__stub {name}" for name in table if name != "exit")
    text = (
        f"set ::__out_path {tcl_word(str(out))}\nset ::__script {tcl_word(str(script))}\n"
        + HARNESS
        + stubs
        + "\n"
        + extra_tcl
        + TCL85_ONLY
        + "\nset ::argv [list "
        + " ".join(tcl_word(a) for a in argv)
        + "]\n"
        + FINISH
    )
    harness = out.with_suffix(".tcl")
    harness.write_text(text)
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("LENET5_")}
    run_env.update(env or {})
    proc = subprocess.run(
        [TCLSH, str(harness)], capture_output=True, text=True, timeout=30, env=run_env, cwd=cwd or tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert isinstance(lines[-1], dict), lines[-1]
    return DryRun(lines[:-1], lines[-1]["status"], lines[-1]["message"])


# ---------------------------------------------------------------------------- build_prj.tcl
BOARDS = list(hls_config.PARTS)
IP_BOARDS = [b for b, p in hls_config.PARTS.items() if p.build == "ip"]
SYNTH_BOARDS = [b for b, p in hls_config.PARTS.items() if p.build == "synth"]
FLOW_ORDER = [
    "open_project",
    "set_top",
    "add_files",
    "open_solution",
    "set_part",
    "create_clock",
    "csim_design",
    "csynth_design",
    "cosim_design",
    "export_design",
    "exit",
]


@pytest.fixture
def golden(tmp_path):
    """A stand-in golden directory: the script only checks that images.bin is there."""
    d = tmp_path / "golden"
    d.mkdir()
    (d / "images.bin").write_bytes(b"\0" * 784)
    return d


def hls(tmp_path, *argv, env=None) -> DryRun:
    return dry_run(BUILD_PRJ, list(argv), VITIS_HLS, tmp_path, env=env)


def assert_in_flow_order(names):
    """The calls keep UG1399's order: project, top, files, solution, part, clock, then the steps;
    csynth before cosim and export."""
    ranks = [FLOW_ORDER.index(n) for n in names]
    assert ranks == sorted(ranks), names
    assert names[0] == "open_project" and names[-1] == "exit"


def test_part_table_is_generated_and_current():
    text = (HLS_SRC / "generated" / export.PARTS_TCL).read_text()
    assert text == export.parts_tcl(), "run: python -m lenet5_pynq.export hls"
    assert export.PARTS_TCL in export.render_headers()


@pytest.mark.parametrize("board", IP_BOARDS)
def test_ip_board_runs_the_whole_flow_on_its_part(board, tmp_path, golden):
    run = hls(tmp_path, f"board={board}", f"golden={golden}")
    assert run.status == "exit", run.message
    run.assert_clean(VITIS_HLS)
    assert run.names == [
        "open_project",
        "set_top",
        "add_files",
        "add_files",
        "open_solution",
        "set_part",
        "create_clock",
        "csim_design",
        "csynth_design",
        "cosim_design",
        "export_design",
        "exit",
    ]
    assert_in_flow_order(run.names)
    assert run.first("set_part")[1:] == [hls_config.PARTS[board].part]
    assert run.first("open_project")[1:] == ["-reset", f"build/prj_{board}"]
    assert run.first("set_top")[1:] == [hls_config.TOP]
    assert run.option(run.first("open_solution"), "-flow_target") == "vivado"


@pytest.mark.parametrize("board", SYNTH_BOARDS)
def test_synth_board_runs_synthesis_only(board, tmp_path):
    run = hls(tmp_path, f"board={board}")  # no golden data needed: no simulation
    assert run.status == "exit", run.message
    run.assert_clean(VITIS_HLS)
    assert "csynth_design" in run.names
    assert not {"csim_design", "cosim_design", "export_design"} & set(run.names)
    assert run.first("set_part")[1:] == [hls_config.PARTS[board].part]


@pytest.mark.parametrize("board", SYNTH_BOARDS)
@pytest.mark.parametrize("step", ["csim", "cosim", "export"])
def test_synth_board_refuses_other_steps(board, step, tmp_path, golden):
    run = hls(tmp_path, f"board={board}", f"steps={step}", f"golden={golden}")
    assert run.status == "error" and "synthesis only" in run.message and step in run.message
    assert run.calls == []


def test_defaults_come_from_the_generated_table(tmp_path, golden):
    run = hls(tmp_path, f"golden={golden}")
    assert run.status == "exit", run.message
    assert run.first("set_part")[1:] == [hls_config.PARTS[hls_config.DEFAULT_BOARD].part]
    clock = run.first("create_clock")
    assert float(run.option(clock, "-period")) == pytest.approx(1000 / hls_config.CLOCK_MHZ)
    assert run.option(clock, "-name") == "default"


def test_sources_simulation_images_and_ip_identity(tmp_path, golden):
    run = hls(tmp_path, f"golden={golden}", "csim_images=7", "cosim_images=3")
    assert run.status == "exit", run.message
    design, tb = run.all("add_files")
    assert "-tb" not in design and design[1] == "lenet5.cpp"
    assert "-tb" in tb and "tb/lenet5_tb.cpp" in tb
    for call in (design, tb):
        flags = run.option(call, "-cflags").split()
        assert "-std=c++14" in flags and f"-I{HLS_SRC}" in flags and f"-I{HLS_SRC / 'generated'}" in flags
    assert run.option(run.first("csim_design"), "-argv").split() == [str(golden), "7"]
    cosim = run.first("cosim_design")
    assert run.option(cosim, "-argv").split() == [str(golden), "3"]
    assert run.option(cosim, "-rtl") == "verilog"
    exp = run.first("export_design")
    assert run.option(exp, "-format") == "ip_catalog"
    vlnv = ":".join(run.option(exp, o) for o in ("-vendor", "-library", "-ipname", "-version"))
    assert vlnv == hls_config.VLNV


def test_simulation_image_counts_default(tmp_path, golden):
    run = hls(tmp_path, f"golden={golden}")
    assert run.option(run.first("csim_design"), "-argv").split() == [str(golden), "100"]
    assert run.option(run.first("cosim_design"), "-argv").split() == [str(golden), "20"]


def test_options_override_the_table(tmp_path, golden):
    run = hls(tmp_path, "board=zcu104", "part=xc7z010clg400-1", "period=5", "steps=csynth,export")
    assert run.status == "exit", run.message
    run.assert_clean(VITIS_HLS)
    assert run.first("set_part")[1:] == ["xc7z010clg400-1"]
    assert run.option(run.first("create_clock"), "-period") == "5"
    assert [n for n in run.names if n.endswith("_design")] == ["csynth_design", "export_design"]


@pytest.mark.parametrize("steps", ["cosim", "export", "export,cosim"])
def test_cosim_and_export_imply_csynth_first(steps, tmp_path, golden):
    run = hls(tmp_path, f"steps={steps}", f"golden={golden}")
    assert run.status == "exit", run.message
    designs = [n for n in run.names if n.endswith("_design")]
    assert designs[0] == "csynth_design" and "csim_design" not in designs
    assert_in_flow_order(run.names)


@pytest.mark.parametrize(
    "argv",
    [
        ["-f", str(BUILD_PRJ), "-tclargs", "board=zcu104"],
        [str(BUILD_PRJ), "board=zcu104"],
        ["build_prj.tcl", "board=zcu104"],
        ["board=zcu104 steps=csynth"],  # one element holding all the words
        ["", "board=zcu104"],
    ],
)
def test_tool_words_in_argv_are_skipped(argv, tmp_path):
    run = hls(tmp_path, *argv, "steps=csynth")
    assert run.status == "exit", run.message
    assert run.first("set_part")[1:] == [hls_config.PARTS["zcu104"].part]


def test_environment_variables_and_arguments_win(tmp_path, golden):
    env = {"LENET5_BOARD": "kv260", "LENET5_STEPS": "csynth"}
    run = hls(tmp_path, env=env)
    assert run.first("set_part")[1:] == [hls_config.PARTS["kv260"].part]
    assert run.first("open_project")[-1] == "build/prj_kv260"
    run = hls(tmp_path, "board=zcu104", env=env)
    assert run.first("set_part")[1:] == [hls_config.PARTS["zcu104"].part]


@pytest.mark.parametrize(
    "arg, named",
    [
        ("bogus=1", "'bogus=1'"),
        ("-board", "'-board'"),
        ("board", "'board'"),
        ("board=nosuch", "'nosuch'"),
        ("steps=csim,foo", "'foo'"),
        ("period=0", "'0'"),
        ("period=fast", "'fast'"),
        ("csim_images=abc", "'abc'"),
        ("csim_images=0", "'0'"),
        ("cosim_images=-3", "'-3'"),
    ],
)
def test_bad_argument_is_refused_by_name_before_any_tool_command(arg, named, tmp_path, golden):
    run = hls(tmp_path, f"golden={golden}", arg)
    assert run.status == "error", run.names
    assert named in run.message, run.message
    assert run.calls == [], "no vendor command may run before the arguments are checked"


def test_unknown_board_lists_the_table(tmp_path):
    run = hls(tmp_path, "board=nosuch")
    for board in BOARDS:
        assert board in run.message


def test_missing_golden_data_is_reported(tmp_path):
    run = hls(tmp_path, f"golden={tmp_path / 'nowhere'}")
    assert run.status == "error" and "export golden" in run.message and run.calls == []
    # synthesis alone needs none
    run = hls(tmp_path, f"golden={tmp_path / 'nowhere'}", "steps=csynth")
    assert run.status == "exit", run.message


def test_a_vendor_command_without_stand_in_fails_the_run(tmp_path, golden):
    """The harness itself: a command missing from the table is reported, not silently run."""
    table = {k: v for k, v in VITIS_HLS.items() if k != "cosim_design"}
    run = dry_run(BUILD_PRJ, [f"golden={golden}"], table, tmp_path)
    assert run.status == "error" and "cosim_design" in run.message
    with pytest.raises(AssertionError, match="without a stand-in"):
        run.assert_clean(table)


def test_undocumented_option_fails_the_check():
    with pytest.raises(AssertionError, match="not documented"):
        check_options(VIVADO, ["make_wrapper", "-files", "x.bd", "-top"])
    with pytest.raises(AssertionError, match="documented values"):
        check_options(VITIS_HLS, ["open_solution", "-flow_target", "fpga", "solution"])


# ------------------------------------------------------------------------ Vivado: build.tcl
VIVADO_RESULTS = r"""
__stub current_project lenet5_project
__stub current_fileset sources_1
__stub get_bd_addr_segs SEG_one
__stub get_timing_paths timing_path_1
proc ::get_ipdefs args { __record get_ipdefs $args; return $::__ipdefs }
proc ::get_files args {
    __record get_files $args
    if {"-of_objects" in $args} { return $::__hwh }
    return [lindex $args end]
}
proc ::get_property args {
    __record get_property $args
    switch -- [string toupper [lindex $args end-1]] {
        PROGRESS { return $::__progress }
        SLACK { return $::__slack }
        DIRECTORY { return $::__run_dir }
    }
    return ""
}
"""


def vivado_setup(tmp_path: Path, board: str, progress="100%", slack="0.25", ipdefs=None):
    params = tmp_path / "design_params.tcl"
    params.write_text(board_design.render_tcl(board))
    run_dir = tmp_path / "impl_1"
    run_dir.mkdir(exist_ok=True)
    (run_dir / f"{board_design.BD_NAME}_wrapper.bit").write_bytes(b"bit")
    hwh = tmp_path / f"{board_design.BD_NAME}.hwh"
    hwh.write_text("<EDKSYSTEM/>")
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    extra = (
        f"set ::__progress {tcl_word(progress)}\nset ::__slack {tcl_word(slack)}\n"
        f"set ::__run_dir {tcl_word(str(run_dir))}\nset ::__hwh {tcl_word(str(hwh))}\n"
        f"set ::__ipdefs {tcl_word(hls_config.VLNV if ipdefs is None else ipdefs)}\n" + VIVADO_RESULTS
    )
    return params, work, extra


def vivado(tmp_path, board="pynq-z2", argv=None, **kwargs) -> tuple[DryRun, Path]:
    params, work, extra = vivado_setup(tmp_path, board, **kwargs)
    ip_repo = tmp_path / "ip"
    argv = [str(params), str(ip_repo), "4"] if argv is None else argv
    return dry_run(OVERLAY_TCL / "build.tcl", argv, VIVADO, tmp_path, extra_tcl=extra, cwd=work), work


def _index(names, name, start=0):
    return names.index(name, start)


@pytest.mark.parametrize("board", list(board_design.BOARDS))
def test_vivado_build_runs_to_the_end(board, tmp_path):
    run, work = vivado(tmp_path, board)
    assert run.status == "end", run.message
    run.assert_clean(VIVADO)
    b = board_design.board(board)
    n = run.names
    # project, catalog, block design, wrapper, runs, reports: in that order
    order = [
        "create_project",
        "update_ip_catalog",
        "get_ipdefs",
        "create_bd_design",
        "validate_bd_design",
        "save_bd_design",
        "generate_target",
        "make_wrapper",
        "update_compile_order",
        "launch_runs",
        "wait_on_runs",
        "open_run",
        "report_utilization",
        "report_timing_summary",
        "get_timing_paths",
    ]
    positions = [_index(n, name) for name in order]
    assert positions == sorted(positions), list(zip(order, positions))
    launches = [c for c in run.calls if c[0] in ("launch_runs", "wait_on_runs")]
    assert [(c[0], c[1]) for c in launches] == [
        ("launch_runs", "synth_1"),
        ("wait_on_runs", "synth_1"),
        ("launch_runs", "impl_1"),
        ("wait_on_runs", "impl_1"),
    ]
    assert run.option(launches[2], "-to_step") == "write_bitstream"
    assert run.option(launches[0], "-jobs") == "4"
    # the part is the one of the HLS table, the board preset the one of board_design
    project = run.first("create_project")
    assert run.option(project, "-part") == b.part == hls_config.PARTS[board].part
    props = {(c[1], c[2]) for c in run.all("set_property") if not c[1].startswith("-")}
    assert ("board_part", b.board_part) in props
    assert ("ip_repo_paths", str(tmp_path / "ip")) in props
    assert ("top", f"{board_design.BD_NAME}_wrapper") in props
    # the two files PYNQ needs, with the overlay's stem
    assert (work / f"{board_design.OVERLAY_NAME}.bit").read_bytes() == b"bit"
    assert (work / f"{board_design.OVERLAY_NAME}.hwh").is_file()


@pytest.mark.parametrize("board", list(board_design.BOARDS))
def test_block_design_places_the_ip_and_the_address_map(board, tmp_path):
    run, _ = vivado(tmp_path, board)
    b = board_design.board(board)
    cells = {c[-1]: run.option(c, "-vlnv") for c in run.all("create_bd_cell")}
    assert cells == {
        board_design.PS: b.ps_vlnv,
        board_design.DMA_NAME: board_design.VLNV["axi_dma"],
        board_design.ACCEL_NAME: hls_config.VLNV,
        board_design.RESET_NAME: board_design.VLNV["proc_sys_reset"],
        board_design.ACCEL_RESET_AND: board_design.VLNV["util_vector_logic"],
        board_design.CTRL_INTERCONNECT: board_design.VLNV["smartconnect"],
        board_design.MEM_INTERCONNECT: board_design.VLNV["smartconnect"],
    }
    rule = run.option(run.first("apply_bd_automation"), "-rule")
    ps_rule = "processing_system7" if b.family == "zynq" else "zynq_ultra_ps_e"
    assert rule == f"xilinx.com:bd_rule:{ps_rule}"
    streams = {(c[1], c[2]) for c in run.all("connect_bd_intf_net")}
    dma, accel = board_design.DMA_NAME, board_design.ACCEL_NAME
    assert (f"{dma}/M_AXIS_MM2S", f"{accel}/{board_design.ACCEL_STREAM_IN}") in streams
    assert (f"{accel}/{board_design.ACCEL_STREAM_OUT}", f"{dma}/S_AXIS_S2MM") in streams
    # the AXI4-Lite slaves exactly where board_design places them, range before offset
    addr = [(c[1], c[2]) for c in run.all("set_property") if c[1] in ("range", "offset")]
    expected = []
    for base, size in b.addresses.values():
        expected += [("range", f"0x{size:X}"), ("offset", f"0x{base:08X}")]
    assert addr == expected
    dma = next(
        c
        for c in run.all("set_property")
        if c[1] == "-dict" and c[-1] == board_design.DMA_NAME and "c_sg_length_width" in c[2]
    )
    assert f"CONFIG.c_sg_length_width {board_design.DMA_LENGTH_WIDTH}" in dma[2]


def test_block_design_script_alone(tmp_path):
    """block_design.tcl defines create_lenet5_bd and runs it from the generated parameters alone."""
    for board in board_design.BOARDS:
        params, _, extra = vivado_setup(tmp_path, board)
        driver = tmp_path / f"bd_{board}.tcl"
        driver.write_text(
            f"source {tcl_word(str(params))}\nsource {tcl_word(str(OVERLAY_TCL / 'block_design.tcl'))}\n"
            "create_lenet5_bd\n"
        )
        run = dry_run(driver, [], VIVADO, tmp_path, extra_tcl=extra)
        assert run.status == "end", run.message
        run.assert_clean(VIVADO)
        assert run.names[0] == "create_bd_design" and run.names[-1] == "save_bd_design"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"progress": "0%"}, "synthesis failed"),
        ({"slack": "-0.4"}, "timing not met"),
        ({"slack": ""}, "no constrained timing path"),
        ({"ipdefs": ""}, "not found"),
    ],
)
def test_vivado_build_stops_on_failure(kwargs, message, tmp_path):
    run, work = vivado(tmp_path, **kwargs)
    assert run.status == "error" and message in run.message, run.message
    assert not (work / "lenet5.bit").exists()


@pytest.mark.parametrize(
    "argv_of, message",
    [
        (lambda p, ip: [str(p), str(ip)], "usage"),
        (lambda p, ip: [str(p), str(ip), "many"], "'many'"),
        (lambda p, ip: [str(p.parent / "missing.tcl"), str(ip), "4"], "missing.tcl"),
    ],
)
def test_vivado_build_refuses_bad_arguments(argv_of, message, tmp_path):
    params, work, extra = vivado_setup(tmp_path, "pynq-z2")
    argv = argv_of(params, tmp_path / "ip")
    run = dry_run(OVERLAY_TCL / "build.tcl", argv, VIVADO, tmp_path, extra_tcl=extra, cwd=work)
    assert run.status == "error" and message in run.message, run.message
    assert run.calls == []


# --------------------------------------------------------------- the testbench's image count
def _toolchain() -> str | None:
    if shutil.which("g++") is None:
        return None
    try:
        return str(hls_headers.include_dir())
    except hls_headers.HeadersMissing:
        return None


@pytest.mark.slow
def test_testbench_refuses_a_bad_image_count(tmp_path):
    """build_prj.tcl passes "DIR N" to the testbench; N that is not a whole number >= 1, or a third
    argument, stops it with exit 2 and a message naming the argument (before any data is read).
    The testbench is linked against a stand-in top: only its argument handling runs."""
    include = _toolchain()
    if include is None:
        pytest.skip("needs g++ and the hls4ml ap_types headers")
    stub = tmp_path / "top_stub.cpp"
    stub.write_text(
        '#include "lenet5.h"\n'
        "void lenet5(hls::stream<axis_word> &, hls::stream<axis_word> &, ap_uint<32>, ap_uint<32>) {}\n"
    )
    exe = tmp_path / "tb"
    cmd = [
        "g++",
        "-std=c++14",
        "-O0",
        f"-I{HLS_SRC}",
        f"-I{HLS_SRC / 'generated'}",
        "-isystem",
        include,
        "-DLENET5_MINIMAL_AXIS",
        "-w",
        str(HLS_SRC / "tb" / "lenet5_tb.cpp"),
        str(stub),
        "-o",
        str(exe),
    ]
    build = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    for args, named in [
        (["d", "abc"], "'abc'"),
        (["d", "0"], "'0'"),
        (["d", "-5"], "'-5'"),
        (["d", "12x"], "'12x'"),
        (["d", "99999999999999999999999"], "'99999999999999999999999'"),
        (["d", "5", "extra"], "'extra'"),
    ]:
        proc = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2 and named in proc.stdout, (args, proc.returncode, proc.stdout)
    proc = subprocess.run([str(exe), str(tmp_path / "nowhere"), "5"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and "missing" in proc.stdout  # a good count gets as far as the data
