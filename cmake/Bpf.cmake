# eBPF programs: edgeflow_add_bpf_skeleton() compiles a <name>.bpf.c for the BPF target with clang
# and generates its libbpf skeleton with bpftool. The skeleton header embeds the compiled object,
# so the C++ code that includes it opens, loads and reaches the program and its maps without
# reading any file at run time.
#
#   edgeflow_add_bpf_skeleton(<target> SOURCE <file.bpf.c> [NAME <name>] [VMLINUX])
#
#   <target>  an INTERFACE library whose include directory holds <name>.skel.h; link it
#             (privately) to the code that includes the skeleton.
#   SOURCE    the BPF C source. Edits to it and to every header it includes rebuild the object and
#             the skeleton (clang writes a depfile).
#   NAME      the skeleton's name: the header <name>.skel.h, struct <name>, <name>__open() etc.
#             Default: the source's file name without ".bpf.c".
#   VMLINUX   makes vmlinux.h (every kernel type, for CO-RE tracing programs) includable. It is
#             generated once per build directory from the running kernel's BTF
#             (/sys/kernel/btf/vmlinux), so a build that uses it depends on the build machine's
#             kernel. Programs that can do without it (tc and XDP programs need only the uapi
#             headers of linux-libc-dev) should.
#
# Tools: clang (clang-19 first; any clang with the BPF target will do) and bpftool, found once;
# override with -DEDGEFLOW_BPF_CLANG=... and -DEDGEFLOW_BPFTOOL=....
# Debian packages: clang-19 bpftool libbpf-dev linux-libc-dev (see scripts/setup).
include_guard(GLOBAL)

find_program(EDGEFLOW_BPF_CLANG NAMES clang-19 clang DOC "clang that compiles the eBPF programs")
# Debian installs bpftool in /usr/sbin, which is not on every user's PATH.
find_program(EDGEFLOW_BPFTOOL NAMES bpftool HINTS /usr/sbin /sbin /usr/local/sbin
             DOC "bpftool that generates the eBPF skeletons")

# clang -target bpf does not know the host's multiarch triple, so on Debian it would not find
# <asm/types.h> (which <linux/types.h> includes) in /usr/include/<triple>; that directory is added
# by hand. Empty on distributions without multiarch directories.
if(CMAKE_LIBRARY_ARCHITECTURE)
  set(_edgeflow_bpf_multiarch "${CMAKE_LIBRARY_ARCHITECTURE}")
else()
  execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-multiarch
                  OUTPUT_VARIABLE _edgeflow_bpf_multiarch OUTPUT_STRIP_TRAILING_WHITESPACE
                  ERROR_QUIET)
endif()
set(_edgeflow_bpf_system_includes)
if(_edgeflow_bpf_multiarch AND IS_DIRECTORY "/usr/include/${_edgeflow_bpf_multiarch}")
  list(APPEND _edgeflow_bpf_system_includes -isystem "/usr/include/${_edgeflow_bpf_multiarch}")
endif()

# libbpf's bpf_tracing.h picks the register layout (PT_REGS_*) by __TARGET_ARCH_<arch>.
string(TOLOWER "${CMAKE_SYSTEM_PROCESSOR}" _edgeflow_bpf_processor)
if(_edgeflow_bpf_processor MATCHES "^(x86_64|amd64|i.86)$")
  set(_edgeflow_bpf_arch x86)
elseif(_edgeflow_bpf_processor MATCHES "^(aarch64|arm64)$")
  set(_edgeflow_bpf_arch arm64)
elseif(_edgeflow_bpf_processor MATCHES "^arm")
  set(_edgeflow_bpf_arch arm)
elseif(_edgeflow_bpf_processor MATCHES "^(ppc64|ppc64le|powerpc)")
  set(_edgeflow_bpf_arch powerpc)
elseif(_edgeflow_bpf_processor MATCHES "^riscv")
  set(_edgeflow_bpf_arch riscv)
else()
  set(_edgeflow_bpf_arch "${_edgeflow_bpf_processor}")
endif()

# vmlinux.h, generated on first use into <build>/bpf/include and shared by every program that asks
# for it. Generated once: it is not regenerated when the kernel changes (delete it to refresh).
function(_edgeflow_bpf_vmlinux out_dir_var)
  set(dir "${CMAKE_BINARY_DIR}/bpf/include")
  if(NOT TARGET edgeflow_bpf_vmlinux)
    if(NOT EXISTS /sys/kernel/btf/vmlinux)
      message(FATAL_ERROR "vmlinux.h needs the running kernel's BTF (/sys/kernel/btf/vmlinux, "
                          "CONFIG_DEBUG_INFO_BTF=y), which this machine does not have")
    endif()
    add_custom_command(
      OUTPUT "${dir}/vmlinux.h"
      COMMAND ${CMAKE_COMMAND} -E make_directory "${dir}"
      COMMAND sh -c "\"$1\" btf dump file /sys/kernel/btf/vmlinux format c > \"$2.tmp\""
              sh "${EDGEFLOW_BPFTOOL}" "${dir}/vmlinux.h"
      COMMAND ${CMAKE_COMMAND} -E rename "${dir}/vmlinux.h.tmp" "${dir}/vmlinux.h"
      COMMENT "Generating vmlinux.h from the running kernel's BTF"
      VERBATIM)
    add_custom_target(edgeflow_bpf_vmlinux DEPENDS "${dir}/vmlinux.h")
  endif()
  set(${out_dir_var} "${dir}" PARENT_SCOPE)
endfunction()

function(edgeflow_add_bpf_skeleton target)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "VMLINUX" "SOURCE;NAME" "")
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "edgeflow_add_bpf_skeleton: unknown arguments ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT ARG_SOURCE)
    message(FATAL_ERROR "edgeflow_add_bpf_skeleton(${target}): SOURCE <file.bpf.c> is required")
  endif()
  if(NOT EDGEFLOW_BPF_CLANG)
    message(FATAL_ERROR "edgeflow_add_bpf_skeleton: clang not found (Debian: apt-get install "
                        "clang-19), or set EDGEFLOW_BPF_CLANG")
  endif()
  if(NOT EDGEFLOW_BPFTOOL)
    message(FATAL_ERROR "edgeflow_add_bpf_skeleton: bpftool not found (Debian: apt-get install "
                        "bpftool), or set EDGEFLOW_BPFTOOL")
  endif()

  get_filename_component(source "${ARG_SOURCE}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  if(ARG_NAME)
    set(name "${ARG_NAME}")
  else()
    get_filename_component(name "${source}" NAME)
    string(REGEX REPLACE "\\.bpf\\.c$" "" name "${name}")
    string(REGEX REPLACE "\\.c$" "" name "${name}")
  endif()
  if(NOT name MATCHES "^[A-Za-z_][A-Za-z0-9_]*$")
    # The name becomes C identifiers (struct <name>, <name>__open).
    message(FATAL_ERROR "edgeflow_add_bpf_skeleton(${target}): '${name}' is not a C identifier; "
                        "pass NAME")
  endif()

  set(out_dir "${CMAKE_CURRENT_BINARY_DIR}/${target}")
  set(object "${out_dir}/${name}.bpf.o")
  set(skeleton "${out_dir}/${name}.skel.h")

  set(includes ${_edgeflow_bpf_system_includes})
  set(extra_depends)
  if(ARG_VMLINUX)
    _edgeflow_bpf_vmlinux(vmlinux_dir)
    list(PREPEND includes -I "${vmlinux_dir}")
    list(APPEND extra_depends "${vmlinux_dir}/vmlinux.h")
  endif()

  # -g: the BTF that libbpf needs for the BTF-defined maps (SEC(".maps")) and for CO-RE.
  # -Wno-unused-parameter: libbpf's BPF_PROG/BPF_KPROBE macros declare a ctx bodies need not use.
  add_custom_command(
    OUTPUT "${object}"
    COMMAND ${CMAKE_COMMAND} -E make_directory "${out_dir}"
    COMMAND "${EDGEFLOW_BPF_CLANG}" -g -O2 -target bpf -D__TARGET_ARCH_${_edgeflow_bpf_arch}
            -Wall -Wextra -Wno-unused-parameter ${includes} -MD -MF "${object}.d" -MT "${object}"
            -c "${source}" -o "${object}"
    MAIN_DEPENDENCY "${source}"
    DEPENDS ${extra_depends}
    DEPFILE "${object}.d"
    COMMENT "Compiling eBPF program ${name}.bpf.o"
    VERBATIM)

  # bpftool writes to stdout; through a temporary file so that a failed run leaves no header
  # behind that a later build would take as up to date.
  add_custom_command(
    OUTPUT "${skeleton}"
    COMMAND sh -c "\"$1\" gen skeleton \"$2\" name \"$3\" > \"$4.tmp\""
            sh "${EDGEFLOW_BPFTOOL}" "${object}" "${name}" "${skeleton}"
    COMMAND ${CMAKE_COMMAND} -E rename "${skeleton}.tmp" "${skeleton}"
    DEPENDS "${object}"
    COMMENT "Generating eBPF skeleton ${name}.skel.h"
    VERBATIM)

  add_custom_target(${target}_generate DEPENDS "${skeleton}")
  if(ARG_VMLINUX)
    # The file dependency on vmlinux.h is not enough for generators other than Ninja when the
    # command that makes it lives in another directory.
    add_dependencies(${target}_generate edgeflow_bpf_vmlinux)
  endif()
  add_library(${target} INTERFACE)
  # SYSTEM: warnings in generated code (bpftool's, a later version's) are not ours to fix.
  target_include_directories(${target} SYSTEM INTERFACE "${out_dir}")
  # Followed by everything that links ${target}: the skeleton exists before they compile.
  add_dependencies(${target} ${target}_generate)
  set_target_properties(${target} PROPERTIES EDGEFLOW_BPF_OBJECT "${object}"
                                             EDGEFLOW_BPF_SKELETON "${skeleton}")
endfunction()
