//! Findings of the validator: a stable code, a severity, an object path a person can follow and a
//! message that names the rule. Codes are documented in `docs/DIAGNOSTICS.md`.

use std::fmt;

/// The families of checks (see `docs/DIAGNOSTICS.md` and `docs/VALIDATION.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Format,
    Limits,
    References,
    Graph,
    Scripts,
    Sandbox,
    Frames,
    YieldPoints,
    RegisterTypes,
    Matcher,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Format => "format",
            Family::Limits => "limits",
            Family::References => "references",
            Family::Graph => "graph",
            Family::Scripts => "scripts",
            Family::Sandbox => "sandbox",
            Family::Frames => "frames",
            Family::YieldPoints => "yield-points",
            Family::RegisterTypes => "register-types",
            Family::Matcher => "matcher",
        }
    }
}

macro_rules! codes {
    ($($variant:ident = $code:literal, $family:ident, $rule:literal;)*) => {
        /// A stable diagnostic code. The string form (`F001`, ...) never changes meaning.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $($variant),* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code),* }
            }
            pub fn family(self) -> Family {
                match self { $(Code::$variant => Family::$family),* }
            }
            /// The rule, in a few words (also the SARIF rule's short description).
            pub fn rule(self) -> &'static str {
                match self { $(Code::$variant => $rule),* }
            }
            /// The rule's identifier-style name (`ObjectOutOfRange`; the SARIF rule name).
            pub fn name(self) -> &'static str {
                match self { $(Code::$variant => stringify!($variant)),* }
            }
        }
    };
}

codes! {
    BadMagic = "F001", Format, "the input starts with the snapshot magic";
    UnsupportedVersion = "F002", Format, "the format version is one this validator reads";
    Truncated = "F003", Format, "the input does not end inside a field";
    BadVarint = "F004", Format, "integers use the shortest LEB128 form and fit their type";
    CountExceedsInput = "F005", Format, "counts and lengths fit in the remaining input";
    UnknownTag = "F006", Format, "tags and kinds are ones the format defines";
    NonCanonical = "F007", Format, "booleans are 0 or 1 and flag bytes use only defined bits";
    SectionMismatch = "F008", Format, "sections come in order and their lengths match their contents";
    TrailingBytes = "F009", Format, "nothing follows the last section";
    BadText = "F010", Format, "names are UTF-8 text without NUL bytes";
    InputTooLarge = "L001", Limits, "the snapshot is no larger than the byte limit";
    TooManyObjects = "L002", Limits, "the object count is within the limit";
    StringTooLong = "L003", Limits, "strings and sources are within the length limit";
    TableTooLarge = "L004", Limits, "tables are within the entry limit";
    BufferTooLarge = "L005", Limits, "buffers are within the size limit";
    StackTooLarge = "L006", Limits, "thread stacks are within the slot limit";
    TooManyFrames = "L007", Limits, "threads have no more frames than the limit";
    TooManyEntries = "L008", Limits, "scripts, permanents, upvalues and names are within their limits";
    StateTooLarge = "L009", Limits, "the restored state fits the host's memory limit";
    ObjectOutOfRange = "R001", References, "object references point into the object table";
    PermanentOutOfRange = "R002", References, "permanent references point into the permanents table";
    WrongType = "R003", References, "each reference has the type its slot requires";
    ScriptOutOfRange = "R004", References, "closures name a script of the script table";
    MisplacedIterPosition = "R005", References, "generic-for positions only appear in thread stacks";
    BadTableShape = "R006", References, "table keys are unique, not nil, not NaN, and the hash size is 0 or a power of two";
    BadUpvalueSlot = "R007", References, "open upvalues name a thread and a slot inside its stack";
    BadRoots = "R008", References, "the roots name a thread";
    BadThreadShape = "R009", References, "a thread carries an error value exactly when it errored";
    DuplicateString = "R010", References, "each string appears once (Luau interns strings)";
    IterPositionOutOfRange = "R011", References, "a live generic-for position lies within its table's array and hash parts";
    DuplicatePermanent = "R012", References, "each permanent name appears once";
    CClosureUpvalues = "R013", References, "C closures are the ones libraries make at run time, with the upvalues their function reads";
    HashLayout = "R014", References, "a table's keys sit where Luau's lookups look for them";
    GlobalsLayout = "R015", References, "the base globals' layout has 0 or a power of two positions and names each global once";
    OrphanObject = "G001", Graph, "every object is reachable from the roots";
    UpvalueOwnership = "G002", Graph, "an open upvalue is listed by exactly the thread it points into, once";
    DuplicateOpenSlot = "G003", Graph, "a thread has at most one open upvalue per stack slot";
    ResumeCycle = "G004", Graph, "coroutine resume chains are acyclic";
    ResumeStatus = "G005", Graph, "threads in a resume chain are pre-empted together";
    ResumedTwice = "G006", Graph, "a coroutine is resumed by at most one thread";
    ResumeChainTooDeep = "G007", Graph, "a resume chain is no deeper than the VM nests resumes (200 threads)";
    StatusFrames = "T001", Frames, "a thread's frames and stack are what its status leaves";
    FrameFunction = "T002", Frames, "each frame's function slot, where its caller put it, holds a function of the frame's kind";
    CFrameRole = "T003", Frames, "C frames are resumable library functions in the positions the runtime allows";
    FrameGeometry = "T004", Frames, "frames lie where the VM lays them out";
    ThreadTop = "T005", Frames, "a thread's top is where its suspension leaves it";
    YieldPointOutOfRange = "Y001", YieldPoints, "a frame's yield point exists in its proto's map";
    YieldPointKind = "Y002", YieldPoints, "a yield point's kind fits the frame's position";
    SignatureMismatch = "Y003", YieldPoints, "every used proto's recorded yield-point signature matches the compiled bytecode";
    RegisterType = "V001", RegisterTypes, "registers hold the types the VM reads from them unchecked when the frame resumes";
    MisplacedPosition = "V002", RegisterTypes, "generic-for positions appear only in the position register of a live loop over a table";
    OpenUpvalueRegister = "V003", RegisterTypes, "open upvalues point at captured registers that their frame closes before it returns";
    MatcherSlots = "M001", Matcher, "a frame suspended mid-match keeps its subject, pattern, state (and gsub's replacement and output) where the function reads them";
    MatcherState = "M002", Matcher, "a matching state decodes, and its positions stand inside the subject and on pattern elements the match could have reached";
    MatcherBuffer = "M003", Matcher, "a matching state or output buffer belongs to its frame alone";
    SourceMissing = "S001", Scripts, "every script's source is embedded or supplied";
    HashMismatch = "S002", Scripts, "a script's source hashes to its recorded SHA-256";
    BytecodeRefused = "S003", Scripts, "a script compiles to bytecode the reader accepts";
    ProtoOutOfRange = "S004", Scripts, "a closure's proto exists in its script";
    UpvalueCountMismatch = "S005", Scripts, "a closure has as many upvalues as its proto";
    DuplicateScript = "S006", Scripts, "each script appears once in the script table";
    OtherRuntime = "S007", Scripts, "the snapshot was taken under this runtime's Luau feature flags";
    PermanentNotAllowed = "X001", Sandbox, "only permanents the host allowlists are referenced";
    RawLightUserdata = "X002", Sandbox, "no raw light userdata";
    UnknownCodec = "X003", Sandbox, "userdata only with a codec the host registered";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One step of an object path.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    /// Byte offset in the input (format findings).
    Offset(usize),
    Section(&'static str),
    Object {
        kind: &'static str,
        index: u32,
    },
    Script(u32),
    Permanent(u32),
    Roots,
    Field(&'static str),
    Index(&'static str, u64),
    /// A table key, rendered the way a person would write it.
    Key(String),
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Offset(o) => write!(f, "byte {o}"),
            Segment::Section(s) => write!(f, "{s} section"),
            Segment::Object { kind, index } => write!(f, "{kind}#{index}"),
            Segment::Script(i) => write!(f, "script#{i}"),
            Segment::Permanent(i) => write!(f, "permanent#{i}"),
            Segment::Roots => write!(f, "roots"),
            Segment::Field(name) => write!(f, "{name}"),
            Segment::Index(what, i) => write!(f, "{what} {i}"),
            Segment::Key(k) => write!(f, "key {k}"),
        }
    }
}

/// A path from something a person can find (an object, a section, a byte offset) down to the
/// slot a finding is about: `thread#3 > frame 2 > register 5`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObjectPath(pub Vec<Segment>);

impl ObjectPath {
    pub fn new() -> Self {
        ObjectPath(Vec::new())
    }
    pub fn with(&self, segment: Segment) -> ObjectPath {
        let mut p = self.clone();
        p.0.push(segment);
        p
    }
}

impl fmt::Display for ObjectPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("snapshot");
        }
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" > ")?;
            }
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub path: ObjectPath,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}: {} (rule: {})",
            self.severity.name(),
            self.code,
            self.path,
            self.message,
            self.code.rule()
        )
    }
}

/// Everything the validator found wrong with one snapshot: all independent findings, up to a cap.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    pub diagnostics: Vec<Diagnostic>,
    /// Findings beyond the cap that were not recorded.
    pub omitted: usize,
}

impl Report {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn codes(&self) -> Vec<Code> {
        self.diagnostics.iter().map(|d| d.code).collect()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.diagnostics {
            writeln!(f, "{d}")?;
        }
        if self.omitted > 0 {
            writeln!(f, "... and {} more findings", self.omitted)?;
        }
        Ok(())
    }
}

impl std::error::Error for Report {}

/// Collects findings up to a cap.
#[derive(Debug)]
pub(crate) struct Sink {
    pub report: Report,
    cap: usize,
}

impl Sink {
    pub fn new(cap: usize) -> Sink {
        Sink { report: Report::default(), cap: cap.max(1) }
    }

    pub fn error(&mut self, code: Code, path: ObjectPath, message: impl Into<String>) {
        self.push(Diagnostic { code, severity: Severity::Error, path, message: message.into() });
    }

    pub fn push(&mut self, d: Diagnostic) {
        if self.report.diagnostics.len() < self.cap {
            self.report.diagnostics.push(d);
        } else {
            self.report.omitted += 1;
        }
    }

    pub fn is_full(&self) -> bool {
        self.report.diagnostics.len() >= self.cap
    }
}
