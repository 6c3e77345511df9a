//! Reading XML from outside the commune safely, and checking what we write against the
//! State's and ISO's schemas.
//!
//! * [`guard`]: a file from a partner system is refused before parsing when it is larger
//!   than the configured limit or declares a DTD (`<!DOCTYPE`, `<!ENTITY`): quick-xml does
//!   not expand external entities, but an internal-subset "billion laughs" must be refused
//!   explicitly, not merely left unexpanded.
//! * [`reader`]: a quick-xml reader configured for such input, and helpers for the PES
//!   convention where every value is an empty element with a `V` attribute.
//! * [`tree`]: a bounded element tree over such input, the one parse loop of the bank, PES
//!   and SOAP readers (each adapter says what it keeps of an element).
//! * [`xsd`]: validation against an XSD with `xmllint --schema` (libxml2), used by tests and
//!   by `encaisse` before a file leaves the outbox.
//! * [`specs`]: where the shared specs live (`../shared/specs`, or `ENCAISSE_SPECS_DIR`).

pub mod guard;
pub mod reader;
pub mod specs;
pub mod tree;
pub mod xsd;

pub use guard::{GuardError, check_untrusted};
pub use reader::{EncodingError, to_utf8};
pub use xsd::{XsdError, validate_file};
