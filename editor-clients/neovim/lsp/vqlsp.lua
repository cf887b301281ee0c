-- Native Neovim (>= 0.11) configuration of the vqlsp language server.
--
-- With this file on 'runtimepath' (it is, once the plugin is installed), this is enough:
--
--   vim.lsp.config('vqlsp', { init_options = { device = 'cpu' }, settings = { vqlsp = { device = 'cpu' } } })
--   vim.lsp.enable('vqlsp')
--
-- require('vqlsp').setup(opts) does the same from one options table.
local defaults = require('vqlsp.config')

---@type vim.lsp.Config
return {
  cmd = { 'vqlsp', 'serve' },
  filetypes = vim.deepcopy(defaults.filetypes),
  root_markers = { '.vqlsp.json', '.git' },  -- .vqlsp.json: labels ignored in the workspace
  -- Neovim sends the filetype as languageId; vqlsp expects VS Code's language ids.
  get_language_id = defaults.language_id,
  init_options = vim.empty_dict(),
  settings = { vqlsp = vim.empty_dict() },
  handlers = {
    ['vqlsp/classification'] = function(err, result, ctx)
      require('vqlsp.status').on_classification(err, result, ctx)
    end,
    ['vqlsp/resync'] = function(err, result, ctx)
      require('vqlsp.status').on_resync(err, result, ctx)
    end,
  },
}
