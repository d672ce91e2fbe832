//! Offsets of the header fields (FORMAT.md §2), which depend on the
//! lengths of the three variable fields. Shared by the generators of
//! tests/vectors and tests/kit, which edit headers byte by byte.

use zeta_creds::envelope::HeaderFields;

pub struct Layout {
    pub uuid: usize,
    pub tool: usize,
    pub persona: usize,
}

impl Layout {
    pub const VERSION: usize = 10;
    pub const UUID_LEN: usize = 11;
    pub const UUID: usize = 12;

    pub fn of(f: &HeaderFields) -> Layout {
        Layout {
            uuid: f.usb_uuid.as_str().len(),
            tool: f.tool_version.len(),
            persona: f.persona.len(),
        }
    }
    pub fn log_n(&self) -> usize {
        Self::UUID + self.uuid
    }
    pub fn salt(&self) -> usize {
        self.log_n() + 1
    }
    pub fn wrapped_key(&self) -> usize {
        self.salt() + 16
    }
    pub fn generation(&self) -> usize {
        self.wrapped_key() + 48
    }
    pub fn created(&self) -> usize {
        self.generation() + 8
    }
    pub fn tool_len(&self) -> usize {
        self.created() + 8
    }
    pub fn tool(&self) -> usize {
        self.tool_len() + 1
    }
    pub fn persona_len(&self) -> usize {
        self.tool() + self.tool
    }
    pub fn persona(&self) -> usize {
        self.persona_len() + 1
    }
    pub fn nonce(&self) -> usize {
        self.persona() + self.persona
    }
    pub fn mac(&self) -> usize {
        self.nonce() + 16
    }
    pub fn payload(&self) -> usize {
        self.mac() + 32
    }
}
