//! The process's allocator settings (glibc's malloc on Linux).

/// Keeps large allocations out of the heap for good: glibc serves an
/// allocation above `M_MMAP_THRESHOLD` with its own mapping, returned to
/// the system when freed — but by default raises that threshold to the
/// size of each such block freed, up to 32 MiB. A load frees many large
/// transient buffers (32 MiB input pieces, sort keys), after which such
/// buffers come from the heap and leave holes there that the store's
/// small allocations pin: the process stayed ~50 MB (25% at 1M records)
/// above what the store holds. Setting the threshold turns the adjustment
/// off. 4 MiB rather than the default 128 KiB: a fresh mapping costs page
/// faults on every use, and the buffers between the two are few (measured
/// at 1M records: 128 KiB took 2.1 s of system time, 4 MiB 1.3 s, the
/// adjusting default 1.0 s, for 206, 209 and 250 resident bytes a record).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn pin_mmap_threshold() {
    const MMAP_THRESHOLD: libc::c_int = 4 << 20;
    // SAFETY: mallopt only changes a malloc parameter; called first thing
    // in `main`, before any other thread exists.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Other allocators need no setting.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn pin_mmap_threshold() {}

/// Hands the heap's free pages back to the system (glibc's `malloc_trim`
/// releases whole free pages anywhere in the heap, not only at its top).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn release_free_pages() {
    // SAFETY: malloc_trim only returns free memory to the system.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators need no call.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn release_free_pages() {}
