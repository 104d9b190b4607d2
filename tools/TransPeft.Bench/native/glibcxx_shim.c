/*
 * libLibTorchSharp.so of TorchSharp 0.107 is built with GCC 13 and imports std::ios_base_library_init()
 * (GLIBCXX_3.4.32), which libstdc++ < 13 (Debian 12: GLIBCXX_3.4.30) lacks. GCC 13 moved iostream
 * initialisation into libstdc++ and references this function to pull it in; older libstdc++ initialise
 * iostreams from every translation unit that includes <iostream> (libtorch's do), so a no-op suffices.
 * Used only by tools/TransPeft.Bench (see libtorch-compat.sh); the engine never loads libtorch.
 */
void _ZSt21ios_base_library_initv(void) {}
