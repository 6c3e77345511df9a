//! Progress of a large export's reading: a 1,000,000-invoice file takes minutes, so every
//! tenth of its lines is logged and shown as gauges (`encaisse_polyfac_import_*{tenant}`),
//! and the gauges are reset to 0 when the file is done.

/// Counts what the second pass has read of one file and says when a new tenth is reached.
#[derive(Debug)]
pub struct ImportProgress {
    tenant: String,
    file: String,
    total_lines: u64,
    lines: u64,
    invoices: u64,
    reported_tenths: u64,
}

impl ImportProgress {
    /// `total_lines`: the line count of the first pass (the data lines of the file).
    pub fn new(tenant: &str, file: &str, total_lines: u64) -> Self {
        let progress = ImportProgress {
            tenant: tenant.to_string(),
            file: file.to_string(),
            total_lines,
            lines: 0,
            invoices: 0,
            reported_tenths: 0,
        };
        progress.set_gauges();
        progress
    }

    /// One invoice read (valid or not), whose last line is `last_line` of the file.
    pub fn invoice_read(&mut self, last_line: u64) {
        self.invoices += 1;
        self.lines = self.lines.max(last_line);
        let tenths = self.tenths();
        if tenths > self.reported_tenths {
            self.reported_tenths = tenths;
            self.set_gauges();
            tracing::info!(
                tenant = %self.tenant,
                file = %self.file,
                lines_read = self.lines,
                lines_total = self.total_lines,
                invoices_read = self.invoices,
                "Export reading: {} %.",
                tenths * 10
            );
        }
    }

    /// Completed tenths of the file (0 to 10).
    pub fn tenths(&self) -> u64 {
        if self.total_lines == 0 {
            return 10;
        }
        (self.lines.min(self.total_lines) * 10) / self.total_lines
    }

    pub fn invoices(&self) -> u64 {
        self.invoices
    }

    fn set_gauges(&self) {
        let ratio = self.tenths() as f64 / 10.0;
        metrics::gauge!("encaisse_polyfac_import_lines_read", "tenant" => self.tenant.clone())
            .set(self.lines as f64);
        metrics::gauge!("encaisse_polyfac_import_invoices_read", "tenant" => self.tenant.clone())
            .set(self.invoices as f64);
        metrics::gauge!("encaisse_polyfac_import_progress_ratio", "tenant" => self.tenant.clone())
            .set(ratio);
    }
}

impl Drop for ImportProgress {
    /// The file is done (or its handling stopped): no import in progress for the tenant.
    fn drop(&mut self) {
        for name in [
            "encaisse_polyfac_import_lines_read",
            "encaisse_polyfac_import_invoices_read",
            "encaisse_polyfac_import_progress_ratio",
        ] {
            metrics::gauge!(name, "tenant" => self.tenant.clone()).set(0.0);
        }
    }
}

/// Describes the gauges (HELP lines of `/metrics`).
pub fn describe() {
    metrics::describe_gauge!(
        "encaisse_polyfac_import_lines_read",
        "Lines of the export being read so far (0 when no file is being read)."
    );
    metrics::describe_gauge!(
        "encaisse_polyfac_import_invoices_read",
        "Invoices of the export being read so far (0 when no file is being read)."
    );
    metrics::describe_gauge!(
        "encaisse_polyfac_import_progress_ratio",
        "Share of the export's lines read, by tenths (0 to 1; 0 when no file is being read)."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenth_is_reported_once_when_its_lines_are_read() {
        let mut progress = ImportProgress::new("vitry", "big.csv", 1000);
        assert_eq!(progress.tenths(), 0);
        progress.invoice_read(99);
        assert_eq!(progress.tenths(), 0);
        progress.invoice_read(100);
        assert_eq!(progress.tenths(), 1);
        progress.invoice_read(350);
        assert_eq!(progress.tenths(), 3);
        // Lines never go back (a rejected invoice may end before the last valid one).
        progress.invoice_read(200);
        assert_eq!(progress.tenths(), 3);
        progress.invoice_read(1000);
        assert_eq!((progress.tenths(), progress.invoices()), (10, 5));
    }

    /// The gauges of one tenant as the recorder holds them: (lines, invoices, ratio).
    fn gauges(snapshotter: &metrics_util::debugging::Snapshotter) -> (f64, f64, f64) {
        let mut values = (f64::NAN, f64::NAN, f64::NAN);
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            if let metrics_util::debugging::DebugValue::Gauge(v) = value {
                match key.key().name() {
                    "encaisse_polyfac_import_lines_read" => values.0 = v.into_inner(),
                    "encaisse_polyfac_import_invoices_read" => values.1 = v.into_inner(),
                    "encaisse_polyfac_import_progress_ratio" => values.2 = v.into_inner(),
                    _ => {}
                }
            }
        }
        values
    }

    #[test]
    fn the_gauges_follow_each_tenth_and_return_to_zero_when_the_file_is_done() {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let mut progress = ImportProgress::new("vitry", "big.csv", 1000);
            assert_eq!(gauges(&snapshotter), (0.0, 0.0, 0.0));
            progress.invoice_read(120);
            progress.invoice_read(180);
            assert_eq!(gauges(&snapshotter), (120.0, 1.0, 0.1), "set at the tenth");
            progress.invoice_read(510);
            assert_eq!(gauges(&snapshotter), (510.0, 3.0, 0.5));
            drop(progress);
            assert_eq!(gauges(&snapshotter), (0.0, 0.0, 0.0));
        });
    }

    #[test]
    fn an_empty_file_is_complete() {
        assert_eq!(ImportProgress::new("vitry", "empty.csv", 0).tenths(), 10);
    }
}
