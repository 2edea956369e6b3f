/// mimalloc instead of the system allocator: glibc's arenas serialise the frees a
/// thread makes of memory another thread allocated, which is the pattern of every
/// write (a request's closure freed on the writer thread, a committed event freed on
/// the runtime's), and its lock and consolidation cost the writer a fifth of its CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    switchyard::cli::main()
}
