"""Model research with honest statistics: the regime-aware walk-forward (``walkforward``) and the
figures that count the trials (``stats``). ``omniwatch research walk-forward`` runs it."""
