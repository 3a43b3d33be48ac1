use super::Container;
use crate::Result;

impl Container {
    /// `delete`: removes a stopped (or, with `force`, any) container and everything made for it.
    pub fn delete(self, force: bool) -> Result<()> {
        let _ = force;
        todo!()
    }
}
