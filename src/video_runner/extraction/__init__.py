"""Frame extraction: the ``FrameSource`` the runner and ``video-runner extract`` use.

Selective decoding lives here, behind that one port: bitstream parsing (``bitstream``,
``jpeg_tables``, ``intra_stream``), decode plans (``decode_plan``, ``planning``), the decoder and
its checks (``container``, ``decoder``, ``stream_checks``), independent chunks decoded in parallel
lanes (``decode_chunks``, ``parallel_chunks``), and the pipeline that preprocesses and encodes
the sampled frames (``pipeline``, ``preprocess_buffers``). The rest of the service imports only
:class:`VideoFrameSource` (an import contract holds it), and sees it as ``ports.FrameSource``.
"""

from video_runner.extraction.frame_source import VideoFrameSource

__all__ = ["VideoFrameSource"]
