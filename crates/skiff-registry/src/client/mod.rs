//! The registry client: auth, manifests, blobs, pull and push.
