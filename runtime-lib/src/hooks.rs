//! OCI hooks (prestart, createRuntime, createContainer, startContainer, poststart, poststop).
