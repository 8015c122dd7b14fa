//! Detection post-processing: NonMaxSuppression.

use super::elem::Float;
use super::error::{shape_err, Error, Result};
use ndarray::{ArrayD, IxDyn};

/// Corners (x_min, x_max, y_min, y_max) of a box given as corners or as center and size.
fn corners(b: [f64; 4], center: bool) -> (f64, f64, f64, f64) {
    if center {
        let (hw, hh) = (b[2] / 2.0, b[3] / 2.0);
        (b[0] - hw, b[0] + hw, b[1] - hh, b[1] + hh)
    } else {
        (b[1].min(b[3]), b[1].max(b[3]), b[0].min(b[2]), b[0].max(b[2]))
    }
}

fn iou_above(a: [f64; 4], b: [f64; 4], center: bool, threshold: f64) -> bool {
    let (ax0, ax1, ay0, ay1) = corners(a, center);
    let (bx0, bx1, by0, by1) = corners(b, center);
    let (ix0, ix1, iy0, iy1) = (ax0.max(bx0), ax1.min(bx1), ay0.max(by0), ay1.min(by1));
    if ix1 <= ix0 || iy1 <= iy0 {
        return false;
    }
    let inter = (ix1 - ix0) * (iy1 - iy0);
    let (area_a, area_b) = ((ax1 - ax0) * (ay1 - ay0), (bx1 - bx0) * (by1 - by0));
    let union = area_a + area_b - inter;
    if inter <= 0.0 || area_a <= 0.0 || area_b <= 0.0 || union <= 0.0 {
        return false;
    }
    inter / union > threshold
}

/// ONNX `NonMaxSuppression`: `[selected, 3]` (batch, class, box) indices, per class by descending score.
pub fn non_max_suppression<T: Float>(
    boxes: &ArrayD<T>,
    scores: &ArrayD<T>,
    max_per_class: i64,
    iou_threshold: f64,
    score_threshold: Option<f64>,
    center_point_box: bool,
) -> Result<ArrayD<i64>> {
    if boxes.ndim() != 3 || scores.ndim() != 3 || boxes.shape()[2] != 4 || scores.shape()[0] != boxes.shape()[0]
        || scores.shape()[2] != boxes.shape()[1]
    {
        return shape_err(format!("non_max_suppression: boxes {:?} and scores {:?}", boxes.shape(), scores.shape()));
    }
    let (batches, classes, n) = (scores.shape()[0], scores.shape()[1], scores.shape()[2]);
    let max_per_class = max_per_class.max(0) as usize;
    let mut selected: Vec<i64> = Vec::new();
    for b in 0..batches {
        let boxes_b: Vec<[f64; 4]> = (0..n)
            .map(|i| std::array::from_fn(|k| boxes[IxDyn(&[b, i, k])].to_f64()))
            .collect();
        for c in 0..classes {
            let mut order: Vec<(f64, usize)> = (0..n)
                .map(|i| (scores[IxDyn(&[b, c, i])].to_f64(), i))
                .filter(|(s, _)| score_threshold.is_none_or(|t| *s > t))
                .collect();
            // Highest score first; equal scores keep the lower box index first.
            order.sort_by(|x, y| y.0.partial_cmp(&x.0).unwrap_or(std::cmp::Ordering::Equal).then(x.1.cmp(&y.1)));
            let mut kept: Vec<usize> = Vec::new();
            for (_, i) in order {
                if kept.len() >= max_per_class {
                    break;
                }
                if kept.iter().all(|&k| !iou_above(boxes_b[i], boxes_b[k], center_point_box, iou_threshold)) {
                    kept.push(i);
                    selected.extend_from_slice(&[b as i64, c as i64, i as i64]);
                }
            }
        }
    }
    let count = selected.len() / 3;
    ArrayD::from_shape_vec(IxDyn(&[count, 3]), selected).map_err(|e| Error::Shape(e.to_string()))
}
