use std::time::{Duration, SystemTime};

use super::*;
use crate::capture::Stamp;

const PERIOD_NS: u64 = 1_000_000_000 / 24;

fn stamp(pts: Duration, seq: u64) -> Stamp {
    Stamp {
        pts,
        captured_at: SystemTime::UNIX_EPOCH + pts,
        seq,
    }
}

/// Frame `n` of a 24 fps stream, its first pixel holding `n` so repeats can be told apart.
fn frame(n: u64) -> VideoFrame {
    VideoFrame {
        stamp: stamp(Duration::from_nanos(n * PERIOD_NS), n),
        width: 2,
        height: 1,
        rgb: vec![n as u8, 0, 0, 0, 0, 0],
    }
}

/// Audio of 10 ms blocks: sample value = its time in seconds, so windows can be checked.
fn audio_block(block: u64) -> AudioBlock {
    let first = block * 160;
    AudioBlock {
        stamp: stamp(Duration::from_millis(block * 10), block),
        rate: 16_000,
        samples: (first..first + 160).map(|s| s as f32 / 16_000.0).collect(),
    }
}

/// Feeds `seconds` of both streams, interleaved as a demuxer would, skipping what `lose`
/// says; returns every snippet.
fn run(
    seconds: u64,
    mut assembler: SnippetAssembler,
    lose_frame: impl Fn(u64) -> bool,
    lose_block: impl Fn(u64) -> bool,
    audio_offset_blocks: i64,
) -> (Vec<Snippet>, SnippetStats) {
    let mut out = Vec::new();
    let frames = seconds * 24;
    let blocks = seconds * 100;
    let (mut f, mut b) = (0u64, 0u64);
    while f < frames || b < blocks {
        let video_time = f * PERIOD_NS;
        let audio_time = b * 10_000_000;
        if f < frames && (b >= blocks || video_time <= audio_time) {
            if !lose_frame(f) {
                out.extend(assembler.push_video(frame(f)).unwrap());
            }
            f += 1;
        } else {
            let shifted = b as i64 + audio_offset_blocks;
            if !lose_block(b) && shifted >= 0 {
                let mut block = audio_block(shifted as u64);
                block.stamp.seq = b;
                out.extend(assembler.push_audio(block).unwrap());
            }
            b += 1;
        }
    }
    out.extend(assembler.finish());
    (out, assembler.stats())
}

#[test]
fn snippets_are_16_frames_with_the_audio_that_ends_with_them() {
    let (snippets, stats) = run(
        6,
        SnippetAssembler::new(SnippetConfig::default(), true),
        |_| false,
        |_| false,
        0,
    );
    // 6 s at 24 fps = 144 frames = 9 snippets.
    assert_eq!(snippets.len(), 9);
    assert_eq!(stats.frames_dropped, 0);
    for (i, snippet) in snippets.iter().enumerate() {
        assert_eq!(snippet.index, i as u64);
        assert_eq!(snippet.frames.len(), 16);
        assert_eq!(snippet.frames[0].rgb[0] as usize, 16 * i);
        let end = (16 * (i as u64 + 1)) * PERIOD_NS;
        assert_eq!(snippet.end, Duration::from_nanos(end));
        // The audio window ends at the snippet's end: its last sample is the one just before.
        let end_sample = (end as f64 * 16e-6).round() as u64;
        if end_sample >= 15_600 {
            let audio = snippet.audio.as_ref().unwrap();
            assert_eq!(audio.len(), 15_600);
            assert_eq!(snippet.audio_missing, 0, "snippet {i}");
            let last = audio[15_599];
            assert!(
                (last - (end_sample - 1) as f32 / 16_000.0).abs() < 1e-6,
                "snippet {i}"
            );
        } else {
            // The first snippet (0.667 s) starts before the stream has 0.96 s of audio.
            assert_eq!(snippet.audio_missing as u64, 15_600 - end_sample);
        }
    }
}

#[test]
fn lost_frames_are_repeated_and_a_long_gap_restarts_the_snippet() {
    // Frames 20-22 lost (3 < max_repeat): repeated. Frames 60-79 lost (20 > 6): the open
    // snippet is dropped.
    let (snippets, stats) = run(
        6,
        SnippetAssembler::new(SnippetConfig::default(), true),
        |f| (20..23).contains(&f) || (60..80).contains(&f),
        |_| false,
        0,
    );
    assert_eq!(stats.frames_repeated, 3);
    let second = &snippets[1];
    assert_eq!(second.frames_repeated, 3);
    let firsts: Vec<u8> = second.frames.iter().map(|f| f.rgb[0]).collect();
    assert_eq!(&firsts[3..8], &[19, 19, 19, 19, 23]);
    // Frames 48..59 were open when the gap came: dropped, and counted.
    assert_eq!(stats.frames_dropped, 12);
    assert_eq!(snippets[3].frames[0].rgb[0], 80);
    assert!(snippets.windows(2).all(|w| w[0].end <= w[1].start));
}

#[test]
fn lost_audio_reads_as_counted_silence() {
    // Blocks 200..230 (2.0-2.3 s) lost.
    let (snippets, stats) = run(
        6,
        SnippetAssembler::new(SnippetConfig::default(), true),
        |_| false,
        |b| (200..230).contains(&b),
        0,
    );
    assert_eq!(snippets.len(), 9);
    let hit: Vec<&Snippet> = snippets
        .iter()
        .filter(|s| s.index > 0 && s.audio_missing > 0)
        .collect();
    assert!(!hit.is_empty());
    for snippet in &hit {
        assert!(snippet.audio_missing <= 4_800, "{}", snippet.audio_missing);
        let audio = snippet.audio.as_ref().unwrap();
        assert_eq!(
            audio.iter().filter(|v| **v == 0.0).count(),
            snippet.audio_missing
        );
    }
    assert_eq!(stats.snippets_short_of_audio, hit.len() as u64 + 1);
}

#[test]
fn audio_lagging_behind_video_is_waited_for_then_given_up_on() {
    // Audio timestamps 3 s behind video: past the 2 s wait, snippets go out short of audio
    // instead of piling up; nothing is lost from the video side.
    let (snippets, stats) = run(
        8,
        SnippetAssembler::new(SnippetConfig::default(), true),
        |_| false,
        |_| false,
        -300,
    );
    assert_eq!(snippets.len(), 12);
    assert!(stats.snippets_short_of_audio >= 1);
    // Each snippet's audio, where present, still ends at its own end time.
    for snippet in snippets.iter().filter(|s| s.audio_missing == 0) {
        let end_sample = (snippet.end.as_nanos() as f64 * 16e-6).round();
        let last = snippet.audio.as_ref().unwrap()[15_599];
        assert!((last - (end_sample as f32 - 1.0) / 16_000.0).abs() < 1e-5);
    }
}

#[test]
fn a_stream_without_audio_gives_snippets_without_it() {
    let mut assembler = SnippetAssembler::new(SnippetConfig::default(), false);
    let mut snippets = Vec::new();
    for f in 0..40 {
        snippets.extend(assembler.push_video(frame(f)).unwrap());
    }
    snippets.extend(assembler.finish());
    assert_eq!(snippets.len(), 2);
    assert!(
        snippets
            .iter()
            .all(|s| s.audio.is_none() && s.audio_missing == 15_600)
    );
    assert_eq!(assembler.stats().frames_dropped, 8);
}

#[test]
fn bad_samples_are_refused_and_change_nothing() {
    let mut assembler = SnippetAssembler::new(SnippetConfig::default(), true);
    assembler.push_video(frame(0)).unwrap();
    let mut wide = frame(1);
    wide.width = 4;
    assert!(matches!(
        assembler.push_video(wide),
        Err(SnippetError::FrameSize { seq: 1, .. })
    ));
    let err = assembler.push_video(frame(0)).unwrap_err();
    assert!(err.to_string().contains("goes back in time"), "{err}");
    let mut block = audio_block(0);
    block.rate = 44_100;
    assert!(matches!(
        assembler.push_audio(block),
        Err(SnippetError::AudioRate { rate: 44_100, .. })
    ));
    let mut block = audio_block(0);
    block.samples[3] = f32::NAN;
    assert!(matches!(
        assembler.push_audio(block),
        Err(SnippetError::AudioNotFinite { seq: 0 })
    ));
    // The stream goes on as if the refused samples never came.
    for f in 1..16 {
        assembler.push_video(frame(f)).unwrap();
    }
    let snippets = assembler.finish();
    assert_eq!(snippets.len(), 1);
    assert_eq!(snippets[0].frames_repeated, 0);
}
