//! The process's allocator settings (glibc's malloc on Linux).

/// Keeps large allocations out of the heap for good: glibc serves an
/// allocation above `M_MMAP_THRESHOLD` (128 KiB) with its own mapping,
/// returned to the system when freed — but by default raises that
/// threshold to the size of each such block freed, up to 32 MiB. A load
/// frees many large transient buffers (input pieces, sort keys), after
/// which such buffers come from the heap and leave holes there that the
/// store's small allocations pin: the process stays tens of megabytes
/// (about 25% at 1M records) above what the store holds. Setting the
/// threshold turns the adjustment off.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn pin_mmap_threshold() {
    // SAFETY: mallopt only changes a malloc parameter; called first thing
    // in `main`, before any other thread exists.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Other allocators need no setting.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn pin_mmap_threshold() {}
