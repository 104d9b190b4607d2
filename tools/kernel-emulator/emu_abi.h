// C ABI over the emulator for the engine's cuda-emulated device (src/TransPeft.KernelEmulation builds a shared
// library of every kernels/*.cu against emu.h; src/TransPeft.Engine/Compute/Cuda/HostEmulatedDevice.cs loads it).
// Each kernel K gets one exported trampoline that takes its arguments like cuLaunchKernel does, as an array of
// pointers to the values:
//     int tpeft_emu_K(const unsigned* launch /* grid x,y,z, block x,y,z, dynamic shared bytes */, void** args, int nargs)
// It returns 0, or -1 when nargs is not the kernel's parameter count, or 1 when the launch faulted (a trap, a
// misaligned ldmatrix/cp.async, a deadlock); tpeft_emu_last_error() then says what happened.
// Include after emu.h and the kernel file; then TPEFT_EMU_KERNEL(name) once per kernel.
#pragma once
#include <type_traits>
#include <utility>

template <class... P, size_t... I>
static bool emu_abi_call(void (*kernel)(P...), const unsigned* d, void** args, std::index_sequence<I...>)
{
    // Each argument is read at its own type from the slot the caller points at (value at offset 0, as for the driver).
    std::tuple<std::decay_t<P>...> values{ *static_cast<std::decay_t<P>*>(args[I])... };
    auto call = [&] { kernel(std::get<I>(values)...); };
    return emu::launch_raw(dim3(d[0], d[1], d[2]), dim3(d[3], d[4], d[5]), d[6], [](void* p) { (*static_cast<decltype(call)*>(p))(); }, &call);
}

template <class... P>
static int emu_abi_launch(void (*kernel)(P...), const unsigned* launch, void** args, int nargs)
{
    if (nargs != (int)sizeof...(P)) return -1;
    return emu_abi_call(kernel, launch, args, std::index_sequence_for<P...>{}) ? 0 : 1;
}

#define TPEFT_EMU_EXPORT extern "C" __attribute__((visibility("default")))
#define TPEFT_EMU_KERNEL(name) \
    TPEFT_EMU_EXPORT int tpeft_emu_##name(const unsigned* launch, void** args, int nargs) { return emu_abi_launch(name, launch, args, nargs); }

// Exactly one translation unit of the library defines TPEFT_EMU_ABI_MAIN before including this header.
#ifdef TPEFT_EMU_ABI_MAIN
/// What the last failed launch hit (the emulator serializes launches, so "last" is well defined).
TPEFT_EMU_EXPORT const char* tpeft_emu_last_error() { return emu::fault.message; }
/// Bumped whenever the trampolines' signature changes; the loader refuses a library of another version.
TPEFT_EMU_EXPORT int tpeft_emu_abi_version() { return 1; }
#endif
