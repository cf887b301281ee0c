-- Commands and cleanup; the server itself starts through vim.lsp.enable('vqlsp')
-- (by require('vqlsp').setup() or by the user's own config).
if vim.g.loaded_vqlsp then
  return
end
vim.g.loaded_vqlsp = true

vim.api.nvim_create_user_command('VqlspStatus', function()
  require('vqlsp').show_status()
end, { desc = 'vqlsp: label, probabilities and compute stats of this buffer' })

vim.api.nvim_create_user_command('VqlspRestart', function()
  require('vqlsp').restart()
end, { desc = 'vqlsp: restart the language server' })

local group = vim.api.nvim_create_augroup('vqlsp', { clear = true })
vim.api.nvim_create_autocmd('LspAttach', {
  group = group,
  callback = function(args)
    local client = vim.lsp.get_client_by_id(args.data.client_id)
    if client and client.name == 'vqlsp' then
      require('vqlsp.cursor').attach(client, args.buf)
    end
  end,
})
vim.api.nvim_create_autocmd('LspDetach', {
  group = group,
  callback = function(args)
    local client = vim.lsp.get_client_by_id(args.data.client_id)
    if client and client.name == 'vqlsp' then
      require('vqlsp.status').clear(args.buf)
      require('vqlsp.cursor').detach(args.buf)
    end
  end,
})
vim.api.nvim_create_autocmd('BufWipeout', {
  group = group,
  callback = function(args)
    require('vqlsp.status').results[args.buf] = nil
  end,
})
