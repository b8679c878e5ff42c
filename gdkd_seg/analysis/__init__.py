"""Analysis tools: the knowledge quality of a layer's features (which teacher layers to distil)."""

from .knowledge_quality import KnowledgeQuality, knowledge_quality, sample_labelled_positions, spectrum_entropy

__all__ = ['KnowledgeQuality', 'knowledge_quality', 'sample_labelled_positions', 'spectrum_entropy']
