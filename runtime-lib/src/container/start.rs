use super::Container;
use crate::Result;

impl Container {
    /// `start`: releases the init blocked on the exec fifo; it then execs the user's process.
    pub fn start(&mut self) -> Result<()> {
        todo!()
    }

    /// Waits for the init to exit and returns its exit code (128+signal when killed, as a shell
    /// reports it). Only the process that created the container can wait for it.
    pub fn wait(&mut self) -> Result<i32> {
        todo!()
    }
}
