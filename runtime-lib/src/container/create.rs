use super::{Container, CreateOptions};
use crate::Result;

impl Container {
    /// `create`: validates the bundle, makes the state directory, forks the init into its
    /// namespaces and waits until it is ready to exec the user's process. On return the container is
    /// `created`, its pid in `opts.pid_file`.
    pub fn create(id: &str, opts: &CreateOptions) -> Result<Container> {
        let _ = (id, opts);
        todo!()
    }
}
