//! Per-call resource limits: a linear-memory cap that remembers whether it was hit, so a
//! trap after a refused `memory.grow` is reported as "out of memory", not as a crash.

use wasmtime::ResourceLimiter;

/// Table elements a plugin may grow to (each costs a pointer on the host).
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

pub struct CallLimits {
    max_memory_bytes: usize,
    memory_refused: bool,
}

impl CallLimits {
    pub fn new(max_memory_bytes: usize) -> Self {
        Self {
            max_memory_bytes,
            memory_refused: false,
        }
    }

    /// Did the plugin ask for more memory than its cap during this call?
    pub fn memory_refused(&self) -> bool {
        self.memory_refused
    }

    pub fn max_memory_bytes(&self) -> usize {
        self.max_memory_bytes
    }
}

impl ResourceLimiter for CallLimits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            self.memory_refused = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
