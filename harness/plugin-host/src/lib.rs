//! kidbench-plugin-host: finds KD method plugins (`libkidbench_plugin_*.so`), loads and validates
//! them (abi_stable layout and version strings, the plugin's ABI version, the libtorch/tch
//! versions it was built with), and wraps a created method in [`PluginMethod`] for the trainer.
//!
//! A training step with a plugin (the host owns models, optimizer, backward, sampling, timing):
//! 1. `let req = method.data_request(&step)?` — which data this micro-batch needs;
//! 2. build that batch (ground truth, or the prompts completed by the student/teacher with
//!    `req.sampling`, or by the teacher's completions made once before training), run the student forward with grad when `req.student_logits`, the teacher
//!    forward without grad when `req.teacher_logits`;
//! 3. `let loss = method.loss(&LossInput { .. }, &mut services)?` — `services` runs the extra
//!    forwards and sampling the method asks for; the result is a finite scalar;
//! 4. `loss.backward()`, accumulate, step the optimizer.
//!
//! [`testing::ToyHost`] is a reference of that step with lookup-table models; [`check`] is the
//! conformance suite of `kidbench plugin check`, which runs such steps against any plugin.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use abi_stable::library::{lib_header_from_path, LibraryError};
use abi_stable::std_types::{RErr, RNone, ROk, RResult, RSome, RString, RVec, Tuple2};
use kidbench_kd::sdk::split_description;
pub use kidbench_kd::sdk::{FormArg, LossForm};
pub use kidbench_plugin_api::PluginModRef;
use kidbench_plugin_api::{
    BatchOf, BatchOwned, HostCtx, MethodObj, PluginInfo, TensorOwned, TensorRef, LIBTORCH_VERSION,
    TCH_VERSION,
};
pub use kidbench_plugin_api::{
    DataRequest, DataSource, Model, ParamKind, SampleSpec, SpecialTokens, StepInfo, ABI_VERSION,
};
use tch::Tensor;

/// Environment variable with extra plugin folders (`:`-separated).
pub const PLUGIN_PATH_ENV: &str = "KIDBENCH_PLUGIN_PATH";
/// File stem prefix of plugin libraries (after the platform's `lib`).
pub const FILE_PREFIX: &str = "kidbench_plugin_";

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("{}: not a loadable library: {message}", path.display())]
    NotALibrary { path: PathBuf, message: String },
    #[error("{}: not a kidbench plugin (missing symbol {symbol}): {message}", path.display())]
    MissingSymbol {
        path: PathBuf,
        symbol: String,
        message: String,
    },
    #[error("{}: incompatible plugin interface: {message}", path.display())]
    Incompatible { path: PathBuf, message: String },
    #[error("plugin '{name}' ({}): plugin ABI version {found}, this kidbench expects {expected}; rebuild the plugin", path.display())]
    AbiVersion {
        name: String,
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("plugin '{name}' ({}): built against {found}, this kidbench uses {expected}; rebuild the plugin", path.display())]
    TorchVersion {
        name: String,
        path: PathBuf,
        /// `libtorch <version> (tch <version>)` of the plugin.
        found: String,
        expected: String,
    },
    #[error("plugin '{name}' ({}): {call} failed: {message}", path.display())]
    Call {
        name: String,
        path: PathBuf,
        call: &'static str,
        message: String,
    },
    #[error("plugin '{name}' ({}): loss is {what}", path.display())]
    BadLoss {
        name: String,
        path: PathBuf,
        what: String,
    },
    #[error("unknown method '{name}'; available: {}", if available.is_empty() { "(none found)".to_string() } else { available.join(", ") })]
    UnknownMethod {
        name: String,
        available: Vec<String>,
    },
    #[error("bad method spec '{spec}': {message} (expected name[:key=value,...])")]
    BadSpec { spec: String, message: String },
    #[error("plugin '{name}' found twice: {} and {} (the first is used)", first.display(), second.display())]
    Duplicate {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
}

// ---------------------------------------------------------------- descriptions

#[derive(Debug, Clone, PartialEq)]
pub struct ParamInfo {
    pub name: String,
    pub kind: ParamKind,
    pub default: String,
    /// `(min, max)` of a numeric parameter.
    pub range: Option<(f64, f64)>,
    pub choices: Vec<String>,
    pub help: String,
}

/// A loaded plugin (for `kidbench plugins`).
#[derive(Debug, Clone)]
pub struct PluginEntry {
    pub name: String,
    pub version: String,
    pub description: String,
    pub params: Vec<ParamInfo>,
    /// The loss the plugin declares in the shared closed forms (`kidbench_kd::sdk::LossForm`),
    /// or why its declaration could not be read; `None` when it declares none.
    pub loss_form: Option<Result<LossForm, String>>,
    pub path: PathBuf,
    module: Module,
}

#[derive(Clone, Copy)]
struct Module(PluginModRef);

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PluginModRef")
    }
}

impl PluginEntry {
    /// Validates the module's self-description (ABI, libtorch and tch versions).
    pub fn from_module(module: PluginModRef, path: &Path) -> Result<Self, PluginError> {
        let info = call_info(module, path)?;
        check_info(&info, path)?;
        let (description, loss_form) = split_description(info.description.as_str());
        Ok(PluginEntry {
            name: info.name.to_string(),
            version: info.version.to_string(),
            description,
            loss_form,
            params: info
                .params
                .iter()
                .map(|p| ParamInfo {
                    name: p.name.to_string(),
                    kind: p.kind,
                    default: p.default.to_string(),
                    range: matches!(p.kind, ParamKind::Float | ParamKind::Int)
                        .then_some((p.min, p.max)),
                    choices: p.choices.iter().map(|c| c.to_string()).collect(),
                    help: p.help.to_string(),
                })
                .collect(),
            path: path.to_path_buf(),
            module: Module(module),
        })
    }

    /// Creates the method from `key=value` parameters.
    pub fn create(&self, params: &[(String, String)]) -> Result<PluginMethod, PluginError> {
        let kv: RVec<Tuple2<RString, RString>> = params
            .iter()
            .map(|(k, v)| Tuple2(RString::from(k.as_str()), RString::from(v.as_str())))
            .collect();
        let create = self.module.0.create();
        let r = catch_unwind(AssertUnwindSafe(|| create(kv)));
        match r {
            Ok(ROk(obj)) => Ok(PluginMethod {
                name: self.name.clone(),
                path: self.path.clone(),
                obj: Mutex::new(obj),
            }),
            Ok(RErr(e)) => Err(self.call_err("create", e.into_string())),
            Err(_) => Err(self.call_err("create", "panicked across the boundary".into())),
        }
    }

    fn call_err(&self, call: &'static str, message: String) -> PluginError {
        PluginError::Call {
            name: self.name.clone(),
            path: self.path.clone(),
            call,
            message,
        }
    }
}

fn call_info(module: PluginModRef, path: &Path) -> Result<PluginInfo, PluginError> {
    let info = module.info();
    match catch_unwind(|| info()) {
        Ok(ROk(i)) => Ok(i),
        Ok(RErr(e)) => Err(PluginError::Incompatible {
            path: path.to_path_buf(),
            message: format!("info() failed: {e}"),
        }),
        Err(_) => Err(PluginError::Incompatible {
            path: path.to_path_buf(),
            message: "info() panicked".into(),
        }),
    }
}

fn check_info(info: &PluginInfo, path: &Path) -> Result<(), PluginError> {
    if info.abi_version != ABI_VERSION {
        return Err(PluginError::AbiVersion {
            name: info.name.to_string(),
            path: path.to_path_buf(),
            found: info.abi_version,
            expected: ABI_VERSION,
        });
    }
    if info.libtorch_version.as_str() != LIBTORCH_VERSION
        || info.tch_version.as_str() != TCH_VERSION
    {
        return Err(PluginError::TorchVersion {
            name: info.name.to_string(),
            path: path.to_path_buf(),
            found: format!(
                "libtorch {} (tch {})",
                info.libtorch_version, info.tch_version
            ),
            expected: format!("libtorch {LIBTORCH_VERSION} (tch {TCH_VERSION})"),
        });
    }
    Ok(())
}

/// Loads and validates one plugin file.
pub fn load_plugin(path: &Path) -> Result<PluginEntry, PluginError> {
    let p = path.to_path_buf();
    let lib_err = |e: LibraryError| match e {
        LibraryError::OpenError { err, .. } => PluginError::NotALibrary {
            path: p.clone(),
            message: err.to_string(),
        },
        LibraryError::GetSymbolError { symbol, err, .. } => PluginError::MissingSymbol {
            path: p.clone(),
            symbol: String::from_utf8_lossy(&symbol)
                .trim_end_matches('\0')
                .to_string(),
            message: err.to_string(),
        },
        other => PluginError::Incompatible {
            path: p.clone(),
            message: other.to_string(),
        },
    };
    let header = lib_header_from_path(path).map_err(lib_err)?;
    let module = header.init_root_module::<PluginModRef>().map_err(lib_err)?;
    PluginEntry::from_module(module, path)
}

/// Whether `path` is named like a plugin (`libkidbench_plugin_*.so` on Linux).
pub fn is_plugin_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let prefix = format!("{}{FILE_PREFIX}", std::env::consts::DLL_PREFIX);
    name.starts_with(&prefix) && name.ends_with(std::env::consts::DLL_SUFFIX)
}

/// Where to look: `plugin_dirs` (`--plugin-dir`), then `KIDBENCH_PLUGIN_PATH`, then the build
/// output folder of the running executable (`target/<profile>/`, also from `target/<profile>/deps`).
pub fn search_dirs(plugin_dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = plugin_dirs.to_vec();
    if let Some(p) = std::env::var_os(PLUGIN_PATH_ENV) {
        dirs.extend(std::env::split_paths(&p).filter(|d| !d.as_os_str().is_empty()));
    }
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        if exe_dir.file_name().is_some_and(|n| n == "deps") {
            if let Some(up) = exe_dir.parent() {
                dirs.push(up.to_path_buf());
            }
        }
        dirs.push(exe_dir);
    }
    let mut seen = Vec::new();
    dirs.retain(|d| {
        let key = d.canonicalize().unwrap_or_else(|_| d.clone());
        if seen.contains(&key) {
            false
        } else {
            seen.push(key);
            true
        }
    });
    dirs
}

/// The plugins found in some folders, and the files that failed to load.
#[derive(Debug, Default)]
pub struct Registry {
    entries: Vec<PluginEntry>,
    failures: Vec<PluginError>,
}

impl Registry {
    /// Loads every plugin file in `dirs` (in order; the first plugin of a name wins). A failing
    /// file is recorded in [`Registry::failures`] and never stops the others.
    pub fn discover(dirs: &[PathBuf]) -> Registry {
        let mut reg = Registry::default();
        for dir in dirs {
            let Ok(rd) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_plugin_file(p))
                .collect();
            files.sort();
            for f in files {
                reg.add_file(&f);
            }
        }
        reg
    }

    /// Loads one file into the registry (failures are recorded).
    pub fn add_file(&mut self, path: &Path) {
        match load_plugin(path) {
            Ok(e) => self.add(e),
            Err(err) => self.failures.push(err),
        }
    }

    /// Adds an already validated plugin (e.g. a statically linked one).
    pub fn add(&mut self, entry: PluginEntry) {
        if let Some(first) = self.entries.iter().find(|x| x.name == entry.name) {
            if first.path != entry.path {
                self.failures.push(PluginError::Duplicate {
                    name: entry.name.clone(),
                    first: first.path.clone(),
                    second: entry.path.clone(),
                });
            }
            return;
        }
        self.entries.push(entry);
    }

    pub fn list(&self) -> &[PluginEntry] {
        &self.entries
    }

    pub fn failures(&self) -> &[PluginError] {
        &self.failures
    }

    pub fn names(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.name.clone()).collect()
    }

    pub fn get(&self, name: &str) -> Result<&PluginEntry, PluginError> {
        self.entries
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| PluginError::UnknownMethod {
                name: name.to_string(),
                available: self.names(),
            })
    }

    /// Creates a method from a spec like `kid:alpha=0.3,strategy=hard`.
    pub fn create(&self, spec: &str) -> Result<PluginMethod, PluginError> {
        let (name, params) = parse_method_spec(spec)?;
        self.get(&name)?.create(&params)
    }
}

/// `name[:key=value,...]` → name and pairs (a bare `key` means `key=`, e.g. a boolean flag).
pub fn parse_method_spec(spec: &str) -> Result<(String, Vec<(String, String)>), PluginError> {
    let bad = |m: &str| PluginError::BadSpec {
        spec: spec.to_string(),
        message: m.to_string(),
    };
    let (name, rest) = match spec.split_once(':') {
        Some((n, r)) => (n.trim(), r),
        None => (spec.trim(), ""),
    };
    if name.is_empty() {
        return Err(bad("empty method name"));
    }
    let mut params = Vec::new();
    for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        if k.trim().is_empty() {
            return Err(bad("empty parameter name"));
        }
        params.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok((name.to_ascii_lowercase(), params))
}

// ---------------------------------------------------------------- a created method

/// A batch on the host side (right padded; see `kidbench_plugin_api::BatchOf` for the layout).
#[derive(Debug)]
pub struct SampledBatch {
    pub input_ids: Tensor,
    pub attention_mask: Tensor,
    pub labels: Tensor,
    pub loss_mask: Tensor,
    /// Target tokens to divide this batch's losses by (global count, see PLUGINS.md).
    pub norm_tokens: f64,
}

/// Borrowed view of the batch handed to `loss`.
#[derive(Debug, Clone, Copy)]
pub struct BatchTensors<'a> {
    pub input_ids: &'a Tensor,
    pub attention_mask: &'a Tensor,
    pub labels: &'a Tensor,
    pub loss_mask: &'a Tensor,
    pub norm_tokens: f64,
}

impl SampledBatch {
    pub fn view(&self) -> BatchTensors<'_> {
        BatchTensors {
            input_ids: &self.input_ids,
            attention_mask: &self.attention_mask,
            labels: &self.labels,
            loss_mask: &self.loss_mask,
            norm_tokens: self.norm_tokens,
        }
    }
}

/// What the host runs for a method during `loss`: extra forwards and sampling.
pub trait HostServices {
    /// Logits `[B, T, V]` of `model` on `input_ids`; with grad only when `grad` (student only).
    /// With `rows` (`[B, T]`) they must be exact where `rows != 0`; other rows may be 0.
    fn forward(
        &mut self,
        model: Model,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        rows: Option<&Tensor>,
        grad: bool,
    ) -> anyhow::Result<Tensor>;
    /// The current micro-batch's prompts completed by `model` (KV-cache generator).
    fn sample(&mut self, model: Model, spec: &SampleSpec) -> anyhow::Result<SampledBatch>;
}

/// Everything `loss` gets besides the services.
#[derive(Debug, Clone, Copy)]
pub struct LossInput<'a> {
    pub batch: BatchTensors<'a>,
    /// Student logits on `batch` (with grad) when `DataRequest::student_logits`.
    pub student_logits: Option<&'a Tensor>,
    /// Teacher logits on `batch` when `DataRequest::teacher_logits`.
    pub teacher_logits: Option<&'a Tensor>,
    pub step: StepInfo,
    pub tokens: SpecialTokens,
}

/// A created method. Calls are serialized by an internal lock, so it is `Send + Sync`.
pub struct PluginMethod {
    name: String,
    path: PathBuf,
    obj: Mutex<MethodObj>,
}

// SAFETY: the plugin state is a `Send` Rust value (the SDK's `Plugin: Send` bound) and every call
// goes through the mutex.
unsafe impl Send for PluginMethod {}
unsafe impl Sync for PluginMethod {}

impl std::fmt::Debug for PluginMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PluginMethod({} from {})",
            self.name,
            self.path.display()
        )
    }
}

impl Drop for PluginMethod {
    fn drop(&mut self) {
        let obj = self.obj.get_mut().unwrap_or_else(|p| p.into_inner());
        (obj.drop)(obj.state);
    }
}

type Services<'a> = &'a mut dyn HostServices;

fn host_guard<T>(f: impl FnOnce() -> anyhow::Result<T>) -> RResult<T, RString> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => ROk(v),
        Ok(Err(e)) => RErr(format!("{e:#}").into()),
        Err(_) => RErr("the host panicked".into()),
    }
}

extern "C" fn forward_trampoline(
    host: *mut c_void,
    model: Model,
    input_ids: TensorRef,
    attention_mask: TensorRef,
    rows: abi_stable::std_types::ROption<TensorRef>,
    grad: bool,
) -> RResult<TensorOwned, RString> {
    host_guard(|| {
        // SAFETY: `host` is the `Services` pointer set by `PluginMethod::loss` for this call, and
        // the plugin passes live borrowed handles.
        let s = unsafe { &mut *(host as *mut Services<'_>) };
        let (ids, mask) = unsafe { (input_ids.to_tensor(), attention_mask.to_tensor()) };
        let rows = rows.into_option().map(|r| unsafe { r.to_tensor() });
        s.forward(model, &ids, &mask, rows.as_ref(), grad)
            .map(TensorOwned::new)
    })
}

extern "C" fn sample_trampoline(
    host: *mut c_void,
    model: Model,
    spec: SampleSpec,
) -> RResult<BatchOwned, RString> {
    host_guard(|| {
        // SAFETY: as in `forward_trampoline`.
        let s = unsafe { &mut *(host as *mut Services<'_>) };
        let b = s.sample(model, &spec)?;
        Ok(BatchOf {
            input_ids: TensorOwned::new(b.input_ids),
            attention_mask: TensorOwned::new(b.attention_mask),
            labels: TensorOwned::new(b.labels),
            loss_mask: TensorOwned::new(b.loss_mask),
            norm_tokens: b.norm_tokens,
        })
    })
}

impl PluginMethod {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MethodObj> {
        self.obj.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn call_err(&self, call: &'static str, message: String) -> PluginError {
        PluginError::Call {
            name: self.name.clone(),
            path: self.path.clone(),
            call,
            message,
        }
    }

    /// The data the method needs for this micro-batch.
    pub fn data_request(&self, step: &StepInfo) -> Result<DataRequest, PluginError> {
        let obj = self.lock();
        match (obj.data_request)(obj.state, *step) {
            ROk(r) => Ok(r),
            RErr(e) => Err(self.call_err("data_request", e.into_string())),
        }
    }

    /// The method's scalar loss for this micro-batch; an error when the plugin fails, panics, or
    /// returns a non-scalar or non-finite loss.
    pub fn loss(
        &self,
        input: &LossInput<'_>,
        services: &mut dyn HostServices,
    ) -> Result<Tensor, PluginError> {
        let mut services: Services<'_> = services;
        let b = &input.batch;
        let mut ctx = HostCtx {
            batch: BatchOf {
                input_ids: TensorRef::new(b.input_ids),
                attention_mask: TensorRef::new(b.attention_mask),
                labels: TensorRef::new(b.labels),
                loss_mask: TensorRef::new(b.loss_mask),
                norm_tokens: b.norm_tokens,
            },
            student_logits: match input.student_logits {
                Some(t) => RSome(TensorRef::new(t)),
                None => RNone,
            },
            teacher_logits: match input.teacher_logits {
                Some(t) => RSome(TensorRef::new(t)),
                None => RNone,
            },
            step: input.step,
            tokens: input.tokens,
            host: &mut services as *mut Services<'_> as *mut c_void,
            forward: forward_trampoline,
            sample: sample_trampoline,
        };
        let obj = self.lock();
        let loss = match (obj.loss)(obj.state, &mut ctx) {
            // SAFETY: the plugin returns an owned handle made by `TensorOwned::new`.
            ROk(t) => unsafe { t.into_tensor() },
            RErr(e) => return Err(self.call_err("loss", e.into_string())),
        };
        drop(obj);
        let bad = |what: String| PluginError::BadLoss {
            name: self.name.clone(),
            path: self.path.clone(),
            what,
        };
        if loss.numel() != 1 {
            return Err(bad(format!("not a scalar (shape {:?})", loss.size())));
        }
        let v = loss
            .f_double_value(&[])
            .or_else(|_| loss.f_view([1]).and_then(|l| l.f_double_value(&[0])))
            .map_err(|e| bad(format!("unreadable ({e})")))?;
        if !v.is_finite() {
            return Err(bad(format!("not finite ({v})")));
        }
        Ok(loss)
    }
}

pub mod check;
pub mod testing;
