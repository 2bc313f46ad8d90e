# Vitis HLS flow of the LeNet-5 accelerator: C simulation, synthesis, C/RTL co-simulation and
# export as an IP catalog entry.  Not run on the development machines (no Vitis HLS there); a dry
# run under tclsh with recording stand-ins for the Vitis HLS commands is tests/test_tcl.py.
#
#   vitis_hls -f build_prj.tcl -tclargs [board=BOARD] [part=PART] [period=NS] [steps=S1,S2,...]
#                                       [csim_images=N] [cosim_images=N] [golden=DIR]
#
# Arguments are key=value only (no "-key value": a token starting with "-" is an error, except
# -f and -tclargs, which some tool versions leave in argv).  A token naming this script
# (build_prj.tcl, with or without a directory) is skipped for the same reason.  Anything else
# stops the script before any tool command, with an error naming the token.
#
#   board         a board of generated/lenet5_parts.tcl (from hls_config.PARTS), default there
#                 (pynq-z2); it picks the part and the build kind:
#                 "ip" boards run csim, csynth, cosim, export; "synth" boards (kcu-compare, the
#                 xcku095 of the original Kintex result) run csynth only, and asking them for
#                 another step is an error
#   part          overrides the board's part
#   period        clock period in ns, default 1000 / hls_config.CLOCK_MHZ (generated file)
#   steps         any of csim, csynth, cosim, export, comma-separated; cosim and export need the
#                 RTL of this run (the solution is reset), so they imply csynth
#   csim_images   test images the testbench classifies in csim (default 100; all: 10000)
#   cosim_images  the same for cosim (default 20: RTL simulation is slow)
#   golden        the testbench's data, default build/golden
#                 (python -m lenet5_pynq.export golden --out build/golden, or make golden)
#
# The same keys work as environment variables: LENET5_BOARD, LENET5_PART, LENET5_PERIOD,
# LENET5_STEPS, LENET5_CSIM_IMAGES, LENET5_COSIM_IMAGES, LENET5_GOLDEN (arguments win).
# The IP's VLNV comes from generated/lenet5_types.h (lenet5_pynq/hls_config.py).
# C++ standard: the sources are C++14; Vitis HLS compiles C/C++11/14 for synthesis and
# simulation (UG1399, "Migrating from Vivado HLS to Vitis HLS"), so -std=c++14 goes to both.
# Commands and options as UG1399 (Vitis HLS Command Reference) documents them; plain Tcl 8.5 (no
# lmap, try, string cat: the tools' embedded interpreter may be 8.5), as the dry run enforces.

set here [file dirname [file normalize [info script]]]
cd $here
# cflags and -argv are split on blanks by the tool.
if {[regexp {\s} $here]} { error "lenet5: the checkout path '$here' contains a blank; Vitis HLS splits -cflags and -argv on blanks" }

# lenet5_parts, lenet5_default_board, lenet5_period_ns (python -m lenet5_pynq.export hls)
source [file join $here generated lenet5_parts.tcl]

set all_steps {csim csynth cosim export}
array set opt [list board $lenet5_default_board part "" period $lenet5_period_ns steps "" \
                   csim_images 100 cosim_images 20 golden build/golden]
set keys {board part period steps csim_images cosim_images golden}
set usage "arguments are key=value: [join $keys {=, }]= (see the head of build_prj.tcl)"

foreach key $keys {
    set var LENET5_[string toupper $key]
    if {[info exists ::env($var)] && $::env($var) ne ""} { set opt($key) $::env($var) }
}

# ---- arguments
set script_tail [file tail [file normalize [info script]]]
set tokens [regexp -all -inline {\S+} [join [if {[info exists ::argv]} { set ::argv }] " "]]
foreach arg $tokens {
    if {[regexp {^([A-Za-z_]+)=(.*)$} $arg -> key value]} {
        if {$key ni $keys} { error "lenet5: unknown argument '$arg': $usage" }
        set opt($key) $value
    } elseif {$arg in {-f -tclargs} || [file tail $arg] eq $script_tail} {
        continue ;# the tool's own words, left in argv by some versions
    } else {
        error "lenet5: bad argument '$arg': $usage"
    }
}

# ---- checks, before any tool command
if {![dict exists $lenet5_parts $opt(board)]} {
    error "lenet5: unknown board '$opt(board)': one of [join [dict keys $lenet5_parts] {, }] (hls_config.PARTS)"
}
set build [dict get $lenet5_parts $opt(board) build]
if {$opt(part) eq ""} { set opt(part) [dict get $lenet5_parts $opt(board) part] }
if {![string is double -strict $opt(period)] || $opt(period) <= 0} {
    error "lenet5: period '$opt(period)' is not a positive number of ns"
}
foreach key {csim_images cosim_images} {
    if {![regexp {^[1-9][0-9]*$} $opt($key)]} { error "lenet5: $key '$opt($key)' is not a whole number of images (1 or more)" }
}
if {$opt(steps) eq ""} { set opt(steps) [expr {$build eq "synth" ? "csynth" : [join $all_steps ,]}] }
set steps [split $opt(steps) ,]
foreach step $steps {
    if {$step ni $all_steps} { error "lenet5: unknown step '$step' in steps=$opt(steps): any of [join $all_steps ,]" }
    if {$build eq "synth" && $step ne "csynth"} {
        error "lenet5: board $opt(board) is synthesis only (hls_config.PARTS build=synth): steps=csynth, not $step"
    }
}
set golden [file normalize $opt(golden)]
if {"csim" in $steps || "cosim" in $steps} {
    if {[regexp {\s} $golden]} { error "lenet5: golden '$golden' contains a blank; -argv is split on blanks" }
    if {![file isfile [file join $golden images.bin]]} {
        error "lenet5: no testbench data in $golden: run python -m lenet5_pynq.export golden --out $golden (make golden)"
    }
}

# The IP's identity, from the generated header (one source: lenet5_pynq/hls_config.py).
set fh [open [file join $here generated lenet5_types.h] r]
set types [read $fh]
close $fh
if {![regexp {kVlnv\[\] = "([^":]+):([^":]+):([^":]+):([^":]+)"} $types -> ip(vendor) ip(library) ip(name) ip(version)]} {
    error "lenet5: no kVlnv in generated/lenet5_types.h (python -m lenet5_pynq.export hls)"
}

set cflags "-std=c++14 -I$here -I[file join $here generated]"
puts "lenet5: board $opt(board), part $opt(part), period $opt(period) ns, steps [join $steps ,],\
      IP $ip(vendor):$ip(library):$ip(name):$ip(version)"

# ---- the flow (UG1399 project commands)
open_project -reset build/prj_$opt(board)
set_top $ip(name)
add_files lenet5.cpp -cflags $cflags
add_files -tb tb/lenet5_tb.cpp -cflags $cflags
open_solution -reset solution -flow_target vivado
set_part $opt(part)
create_clock -period $opt(period) -name default

if {"csim" in $steps} {
    csim_design -argv "$golden $opt(csim_images)"
}
if {"csynth" in $steps || "cosim" in $steps || "export" in $steps} {
    csynth_design
}
if {"cosim" in $steps} {
    cosim_design -rtl verilog -trace_level none -argv "$golden $opt(cosim_images)"
}
if {"export" in $steps} {
    export_design -format ip_catalog -vendor $ip(vendor) -library $ip(library) -ipname $ip(name) -version $ip(version) \
        -display_name "LeNet-5 MNIST classifier" -description "LeNet-5 inference on AXI4-Stream, weights loadable at run time"
}
exit
